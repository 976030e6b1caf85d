"""cactus-client admin plugin for the gateway's simulated utility (see plugin.py)."""
