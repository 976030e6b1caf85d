"""``gateway conformance``: the suites that judge a protocol handler or a controller, ours or
anyone's, from what it did on the wire (conformance/README.md)."""
