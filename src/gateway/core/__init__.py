"""The protocol-neutral core: controls, schedule, islanding, backfeed and the engine.

Standard library only and no I/O: inputs are values and ``now``; outputs are values.
"""
