"""IEEE 2030.5 (SEP 2.0 / CSIP) client side."""
