"""V2H / DER protocol gateway: 2030.5 and OpenADR north, Modbus south, a pure safety core."""

__version__ = "0.1.0"
