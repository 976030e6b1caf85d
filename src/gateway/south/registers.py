"""Register-level vocabulary shared by the profile, the codec and the transport (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, unique


@unique
class Table(StrEnum):
    """The four Modbus data tables. The read function code follows from the table."""

    HOLDING = "holding"  # FC03 read, FC06/FC16 write
    INPUT = "input"  # FC04 read only
    COIL = "coil"  # FC01 read, FC05/FC15 write
    DISCRETE = "discrete"  # FC02 read only

    @property
    def writable(self) -> bool:
        return self in (Table.HOLDING, Table.COIL)

    @property
    def bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)


@unique
class DataType(StrEnum):
    """On-the-wire types. ``acc*`` are SunSpec accumulators, ``sunssf`` a SunSpec scale factor."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    ENUM16 = "enum16"
    ENUM32 = "enum32"
    BITFIELD16 = "bitfield16"
    BITFIELD32 = "bitfield32"
    SUNSSF = "sunssf"
    ACC32 = "acc32"
    ACC64 = "acc64"
    STRING = "string"
    BIT = "bit"  # one coil or discrete input


@unique
class WordOrder(StrEnum):
    """Order of 16-bit words in a multi-register value. Bytes within a word are always big-endian
    (the Modbus rule); ``little`` means the low word comes first ("swapped", "CDAB")."""

    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class Pacing:
    """How a device wants to be spoken to: evcc's lesson is that many embedded Modbus servers need
    a pause between requests and a longer timeout than the library default."""

    delay_s: float = 0.0  # pause before every request to this device
    timeout_s: float = 1.0  # per request; a late answer is a timeout, never silently accepted
    # A ramped setpoint (a setGradW / rampTms ramp, a soft start) is written to this device at
    # most this often: a device cannot follow a new limit every few milliseconds, and each write
    # costs a read-back on the link (core/ramp.py says which changes are paced: none that
    # tightens a limit late).
    setpoint_interval_s: float = 1.0
