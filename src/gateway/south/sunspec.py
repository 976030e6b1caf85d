"""SunSpec, sans I/O: model definitions, the model-chain walk, binding points by name, and an
image builder for the simulator.

**Definitions** come from the JSON files that pysunspec2 ships (``sunspec2/models/json``, the
SunSpec Alliance's own ``sunspec/models`` repository); they are read, never retyped, and parsed
lazily, once per model id. Only the data files are used: no pysunspec2 code is imported.

**Names.** A point is named as in the JSON; points of fixed groups get a dotted prefix, as
pysunspec2 names them (``704`` ``PFWInj.PF``). Repetitions of a repeating group are numbered
from 1, as SunSpec numbers curves ("First curve index is 1", model 705) and as pysunspec2's
``Group.index`` does: ``Crv[1].Pt[2].V``. (pysunspec2's Python lists are 0-based:
``model.Crv[0]`` is our ``Crv[1]``.) A bound point is ``"<model>.<point>"`` (``"701.W"``); when a
device has a model twice, the second instance is ``"701#2"`` (``"701#2.W"``), the third
``"701#3"``, in chain order.

**Repeating groups.** Their size depends on values in the device (``NCrv``, ``NPt``), which a
definition cannot know. Without counts, a model exposes its fixed part and the *first*
repetition of each repeating group, up to the first offset that depends on a count (in model
707, ``Crv[1].MayTrip`` follows a repeating ``Pt`` group, so it is not exposed). Pass ``counts``
(values of the count points, e.g. ``{"NCrv": 3, "NPt": 4}``) to lay out every repetition. Legacy
groups with count 0 ("as many as fit") are sized from the device's model length L.

**Types** map onto ``registers.DataType`` one to one, except: ``count`` and ``pad`` → uint16,
``acc16`` → uint16 (accumulator, not-implemented 0), ``ipaddr`` → uint32, ``eui48`` → uint64
(four registers, the first holds 0), ``ipv6addr`` → an opaque 8-register "string".

**Not implemented** values are pysunspec2's (``sunspec2/mb.py``, ``SUNS_UNIMPL_*``): 0x8000 for
int16/sunssf, 0xFFFF for uint16/count/enum16/bitfield16, 0x80000000 for int32, 0xFFFFFFFF for
uint32/enum32/bitfield32, 0x8000... / 0xFFFF... for int64/uint64, **0 for accumulators**
(acc16/32/64) and ipaddr, NaN 0x7FC00000 for float32, an all-FF EUI-48; strings, pads and IPv6
addresses have none (an all-NUL string reads as ""). ``codec.decode`` maps the integer sentinels
to None; it does not look at float patterns.

**Symbols.** ``PointDef.symbols`` are as in the JSON: values for enums, *bit numbers* for
bitfields (701 ``DERMode``: ``GRID_FORMING`` = bit 1). A bound ``Point`` carries, for bitfields,
the mask (``1 << bit``) instead, so that ``codec.encode(point, "GRID_FORMING")`` writes that bit.
``symbol_value`` returns the same register value.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
from collections import Counter
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import Any

from gateway.core import errors
from gateway.south import codec
from gateway.south.profile import Access, Point
from gateway.south.registers import DataType, Table

#: 'SunS' in two registers: the marker at the base address.
SUNS_MARKER = (0x5375, 0x6E53)
#: The model id that ends a chain.
END_ID = 0xFFFF
#: Where devices put 'SunS', in the order pysunspec2 (and the SunSpec spec) try them.
DEFAULT_BASES = (40000, 0, 50000)
_LAST = 0xFFFF  # the last Modbus register address


class SunSpecError(errors.DeviceError, ValueError):
    """A SunSpec chain, definition or name that cannot be used; the message says why."""


# ---------------------------------------------------------------------------------------------
# Types

_TYPES: Mapping[str, DataType] = MappingProxyType(
    {
        "int16": DataType.INT16,
        "uint16": DataType.UINT16,
        "count": DataType.UINT16,
        "pad": DataType.UINT16,
        "acc16": DataType.UINT16,
        "enum16": DataType.ENUM16,
        "bitfield16": DataType.BITFIELD16,
        "sunssf": DataType.SUNSSF,
        "int32": DataType.INT32,
        "uint32": DataType.UINT32,
        "acc32": DataType.ACC32,
        "enum32": DataType.ENUM32,
        "bitfield32": DataType.BITFIELD32,
        "ipaddr": DataType.UINT32,
        "float32": DataType.FLOAT32,
        "int64": DataType.INT64,
        "uint64": DataType.UINT64,
        "acc64": DataType.ACC64,
        "eui48": DataType.UINT64,
        "float64": DataType.FLOAT64,
        "string": DataType.STRING,
        "ipv6addr": DataType.STRING,
    }
)
_SIZES: Mapping[str, int] = MappingProxyType(
    {"int64": 4, "uint64": 4, "acc64": 4, "eui48": 4, "float64": 4, "ipv6addr": 8}
    | dict.fromkeys(("int32", "uint32", "acc32", "enum32", "bitfield32", "ipaddr", "float32"), 2)
    | dict.fromkeys(("int16", "uint16", "count", "pad", "acc16", "enum16", "bitfield16"), 1)
    | {"sunssf": 1}
)
# As unsigned register patterns (sunspec2/mb.py SUNS_UNIMPL_*); None: the type has none.
_NOT_IMPLEMENTED: Mapping[str, int | None] = MappingProxyType(
    {
        "int16": 0x8000,
        "sunssf": 0x8000,
        "uint16": 0xFFFF,
        "count": 0xFFFF,
        "enum16": 0xFFFF,
        "bitfield16": 0xFFFF,
        "acc16": 0,
        "pad": None,
        "int32": 0x8000_0000,
        "uint32": 0xFFFF_FFFF,
        "enum32": 0xFFFF_FFFF,
        "bitfield32": 0xFFFF_FFFF,
        "acc32": 0,
        "ipaddr": 0,
        "float32": 0x7FC0_0000,
        "int64": 0x8000_0000_0000_0000,
        "uint64": 0xFFFF_FFFF_FFFF_FFFF,
        "acc64": 0,
        "eui48": 0x0000_FFFF_FFFF_FFFF,
        "float64": 0x7FF8_0000_0000_0000,
        "string": None,
        "ipv6addr": None,
    }
)
_BITFIELDS = frozenset({"bitfield16", "bitfield32"})


# ---------------------------------------------------------------------------------------------
# Definitions


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a model definition.

    ``offset`` counts from the model's ID register (ID = +0, L = +1, first point +2). In a
    ``GroupDef`` it counts from the start of one repetition of that group instead. ``sf`` is a
    constant exponent, or the name of the ``sunssf`` point; in a laid-out model that name is
    resolved the way pysunspec2 resolves it (the point's own group first, then the model's top
    level) and is the full dotted name within the model.
    """

    name: str
    offset: int
    type: DataType
    sunspec_type: str  # as in the JSON ("count", "pad", "acc16", ... keep their meaning here)
    size: int  # registers
    sf: int | str | None = None
    units: str | None = None
    access: Access = Access.R
    mandatory: bool = False
    static: bool = False
    symbols: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    label: str = ""
    desc: str = ""

    @property
    def not_implemented(self) -> int | None:
        """The register pattern (unsigned) that means "not implemented", if the type has one."""
        return _NOT_IMPLEMENTED[self.sunspec_type]


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A group of the definition tree. ``count`` is None for a fixed group, the name of a
    top-level count point (``"NCrv"``), or a constant; 0 means "as many as fit in L"."""

    name: str
    path: str  # dotted, without repetition numbers ("Crv.Pt"); "" for the model's top group
    count: int | str | None
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()

    @property
    def repeating(self) -> bool:
        return self.count is not None


class _CountUnknown(errors.GatewayError):
    pass


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A SunSpec model definition. ``points`` are those whose offsets do not depend on device
    values (see the module docstring); ``length`` is L without any repetition of a repeating
    group, i.e. the model's L when it has no repeating groups (701: 153)."""

    id: int
    name: str
    label: str
    desc: str
    length: int
    points: tuple[PointDef, ...]
    group: GroupDef
    _by_name: Mapping[str, PointDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({p.name: p for p in self.points}))

    @property
    def repeating_groups(self) -> tuple[GroupDef, ...]:
        """Every repeating group, outermost first."""
        found: list[GroupDef] = []

        def visit(g: GroupDef) -> None:
            for sub in g.groups:
                if sub.repeating:
                    found.append(sub)
                visit(sub)

        visit(self.group)
        return tuple(found)

    def point(self, name: str) -> PointDef:
        """A point of ``points`` by name; SunSpecError suggests close names."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SunSpecError(
                f"model {self.id} ({self.name}) has no point {name!r}"
                + _suggest(name, self._by_name)
            ) from None

    def layout(
        self, counts: Mapping[str, int] | None = None, length: int | None = None
    ) -> tuple[PointDef, ...]:
        """Points with model offsets, expanding repeating groups.

        ``counts`` maps a count point's name (``"NPt"``) to its value; a count-0 group may be
        given by its path (``"module"``). ``length`` is the device's L: it sizes count-0 groups and
        drops points past the model's end (a device may implement a shorter revision, e.g.
        model 1 with L = 65 and no ``Pad``). A group whose count is not known is laid out once,
        and nothing after it is returned.
        """
        out: list[PointDef] = []
        top = frozenset(p.name for p in self.group.points)
        with contextlib.suppress(_CountUnknown):
            _lay(self.group, 0, "", counts or {}, length, top, out)
        if length is None:
            return tuple(out)
        return tuple(p for p in out if p.offset + p.size <= 2 + length)


def _lay(
    group: GroupDef,
    start: int,
    prefix: str,
    counts: Mapping[str, int],
    length: int | None,
    top: frozenset[str],
    out: list[PointDef],
) -> int:
    """Append ``group``'s points (one repetition) at ``start``; return the offset after it."""
    local = frozenset(p.name for p in group.points)
    offset = start
    for p in group.points:
        sf = p.sf
        if isinstance(sf, str):
            # pysunspec2 (device.Point.get_value): the point's own group first, then the model.
            if sf in local:
                sf = prefix + sf
            elif sf not in top:
                msg = f"{prefix}{p.name}: scale factor {sf!r} is not defined"
                raise SunSpecError(msg)
        out.append(replace(p, name=prefix + p.name, offset=offset, sf=sf))
        offset += p.size
    for sub in group.groups:
        if not sub.repeating:
            offset = _lay(sub, offset, f"{prefix}{sub.name}.", counts, length, top, out)
            continue
        n = _count(sub, offset, counts, length, top)
        for i in range(1, (1 if n is None else n) + 1):
            if length is not None and offset >= 2 + length:
                break  # a count larger than the model: the rest is not on the device
            offset = _lay(sub, offset, f"{prefix}{sub.name}[{i}].", counts, length, top, out)
        if n is None:
            raise _CountUnknown
    return offset


def _count(
    group: GroupDef,
    offset: int,
    counts: Mapping[str, int],
    length: int | None,
    top: frozenset[str],
) -> int | None:
    if group.path in counts:
        return max(0, counts[group.path])
    if isinstance(group.count, str):
        n = counts.get(group.count)
        return None if n is None else max(0, n)
    if group.count:
        return group.count
    # count 0: as many as fit between here and the end of the model (pysunspec2 does the same).
    if length is None:
        return None
    one: list[PointDef] = []
    try:
        size = _lay(group, 0, "", counts, None, top, one)
    except _CountUnknown:
        return None
    return max(0, (2 + length - offset) // size) if size else 0


def _fixed_size(group: GroupDef) -> int:
    return sum(p.size for p in group.points) + sum(
        _fixed_size(g) for g in group.groups if not g.repeating
    )


def _parse_point(raw: Mapping[str, Any], offset: int, where: str) -> PointDef:
    name = str(raw["name"])
    stype = str(raw["type"])
    if stype not in _TYPES:
        msg = f"{where}{name}: unknown SunSpec type {stype!r}"
        raise SunSpecError(msg)
    size = int(raw.get("size") or _SIZES.get(stype, 0))
    if size <= 0:
        msg = f"{where}{name}: no size"
        raise SunSpecError(msg)
    sf: int | str | None = raw.get("sf")
    if isinstance(sf, str) and sf.lstrip("-").isdigit():
        sf = int(sf)  # a constant written as text; otherwise the name of a sunssf point
    symbols = {str(s["name"]): int(s["value"]) for s in raw.get("symbols") or ()}
    return PointDef(
        name=name,
        offset=offset,
        type=_TYPES[stype],
        sunspec_type=stype,
        size=size,
        sf=sf,
        units=raw.get("units") or None,
        access=Access.RW if raw.get("access") == "RW" else Access.R,
        mandatory=raw.get("mandatory") == "M",
        static=raw.get("static") == "S",
        symbols=MappingProxyType(symbols),
        label=str(raw.get("label") or ""),
        desc=str(raw.get("desc") or ""),
    )


def _parse_group(raw: Mapping[str, Any], path: str) -> GroupDef:
    points: list[PointDef] = []
    offset = 0
    where = f"{path}." if path else ""
    for p in raw.get("points") or ():
        pd = _parse_point(p, offset, where)
        points.append(pd)
        offset += pd.size
    groups = tuple(
        _parse_group(g, f"{where}{g['name']}" if path else str(g["name"]))
        for g in raw.get("groups") or ()
    )
    count = raw.get("count")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    return GroupDef(str(raw["name"]), path, count, tuple(points), groups)


def _models_dir() -> Any:
    # ``sunspec2/__init__.py`` only sets VERSION, so locating the package imports nothing heavy.
    try:
        return resources.files("sunspec2") / "models" / "json"
    except ModuleNotFoundError as exc:
        msg = "pysunspec2 is not installed; its JSON model definitions are needed"
        raise SunSpecError(msg) from exc


@functools.cache
def known_models() -> tuple[int, ...]:
    """The model ids that have a definition, ascending."""
    ids: list[int] = []
    for entry in _models_dir().iterdir():
        stem = entry.name.removesuffix(".json")
        if entry.name.endswith(".json") and stem.startswith("model_") and stem[6:].isdigit():
            ids.append(int(stem[6:]))
    return tuple(sorted(ids))


@functools.cache
def model(model_id: int) -> ModelDef:
    """The definition of ``model_id``, parsed once."""
    entry = _models_dir() / f"model_{model_id}.json"
    if not entry.is_file():
        msg = f"no SunSpec definition for model {model_id}"
        raise SunSpecError(msg)
    raw = json.loads(entry.read_text(encoding="utf-8"))
    if int(raw["id"]) != model_id:
        msg = f"model_{model_id}.json defines model {raw['id']}"
        raise SunSpecError(msg)
    top = _parse_group(raw["group"], "")
    names = [p.name for p in top.points[:2]]
    if names != ["ID", "L"]:
        msg = f"model {model_id}: the first points are {names}, not ID and L"
        raise SunSpecError(msg)
    shell = ModelDef(
        id=model_id,
        name=top.name,
        label=str(raw["group"].get("label") or top.name),
        desc=str(raw["group"].get("desc") or ""),
        length=_fixed_size(top) - 2,
        points=(),
        group=top,
    )
    return replace(shell, points=shell.layout())


def has_model(model_id: int) -> bool:
    return model_id in known_models()


def symbol_value(model_id: int, point: str, symbol: str) -> int:
    """The register value that means ``symbol``: the value for an enum, the mask for a bitfield
    (``symbol_value(704, "WSetEna", "ENABLED") == 1``)."""
    pd = model(model_id).point(point)
    if symbol not in pd.symbols:
        known = ", ".join(pd.symbols) or "none"
        msg = f"{model_id}.{point} has no symbol {symbol!r} (known: {known})"
        raise SunSpecError(msg)
    return _symbols_on_wire(pd)[symbol]


def _symbols_on_wire(pd: PointDef) -> Mapping[str, int]:
    if pd.sunspec_type in _BITFIELDS:
        return MappingProxyType({k: 1 << v for k, v in pd.symbols.items()})
    return pd.symbols


# ---------------------------------------------------------------------------------------------
# The chain walk


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read ``count`` holding registers (FC03) from ``address``."""

    address: int
    count: int


@dataclass(frozen=True, slots=True)
class ModelInstance:
    id: int
    address: int  # of the model's ID register
    length: int  # L: registers after ID and L

    @property
    def end(self) -> int:
        """The address after the model (its successor's ID register)."""
        return self.address + 2 + self.length


@dataclass(frozen=True, slots=True)
class Chain:
    base: int  # where 'SunS' is
    models: tuple[ModelInstance, ...]
    # False when the chain stopped without the 0xFFFF end marker: the register after the last
    # model answered an exception or read ID 0 (pysunspec2 also accepts such chains).
    ended: bool = True

    def named(self) -> dict[str, ModelInstance]:
        """Instances by binding key: ``"701"`` for the first, ``"701#2"`` for the second."""
        seen: Counter[int] = Counter()
        out: dict[str, ModelInstance] = {}
        for m in self.models:
            seen[m.id] += 1
            out[str(m.id) if seen[m.id] == 1 else f"{m.id}#{seen[m.id]}"] = m
        return out

    def describe(self) -> str:
        return ", ".join(f"{k}@{m.address}" for k, m in self.named().items()) or "no models"


#: The walk: yields reads, receives their registers (None for a Modbus exception reply).
Walk = Generator[ReadRequest, list[int] | None, Chain]


def walk(bases: Sequence[int] = DEFAULT_BASES, max_models: int = 64) -> Walk:
    """Find 'SunS' at the first base that has it and follow the (ID, L) headers to the end.

    Send the registers of each yielded ``ReadRequest`` (or None when the device answered a
    Modbus exception); the generator returns the ``Chain``. Addresses strictly increase (every
    model has L >= 1), so a chain cannot loop unless it wraps past 65535, which is refused.
    """
    tried: list[str] = []
    for base in bases:
        if not 0 <= base < _LAST:
            tried.append(f"{base} (not a register address)")
            continue
        regs = yield ReadRequest(base, 2)
        if regs is None:
            tried.append(f"{base} (exception)")
            continue
        _check_reply(regs, 2, base)
        if tuple(regs) == SUNS_MARKER:
            return (yield from _follow(base, max_models))
        tried.append(f"{base} (read {regs[0]:#06x} {regs[1]:#06x})")
    msg = f"no SunSpec marker 'SunS' (0x5375 0x6E53) at any base; tried {', '.join(tried)}"
    raise SunSpecError(msg)


def _follow(base: int, max_models: int) -> Walk:
    models: list[ModelInstance] = []
    address = base + 2
    while True:
        if address > _LAST:  # the last model ends at 65535: no room for an end marker
            return Chain(base, tuple(models), ended=False)
        header = None
        if address < _LAST:
            header = yield ReadRequest(address, 2)
        if header is None:
            # Some devices do not implement L after the end marker (pysunspec2 reads the ID
            # alone for this reason): try the ID on its own before calling the chain cut off.
            alone = yield ReadRequest(address, 1)
            if alone is None:
                return Chain(base, tuple(models), ended=False)
            _check_reply(alone, 1, address)
            if alone[0] == END_ID:
                return Chain(base, tuple(models), ended=True)
            if alone[0] == 0:
                return Chain(base, tuple(models), ended=False)
            msg = f"model {alone[0]} at {address}: its length register cannot be read"
            raise SunSpecError(msg)
        _check_reply(header, 2, address)
        model_id, length = header
        if model_id == END_ID:
            return Chain(base, tuple(models), ended=True)
        if model_id == 0:  # unimplemented registers read as 0: no model, no end marker
            return Chain(base, tuple(models), ended=False)
        if length == 0:
            msg = f"model {model_id} at {address} has length 0; the chain is corrupt"
            raise SunSpecError(msg)
        if len(models) >= max_models:
            msg = f"more than {max_models} models from base {base}; refusing the chain"
            raise SunSpecError(msg)
        instance = ModelInstance(model_id, address, length)
        if instance.end > _LAST + 1:
            msg = (
                f"model {model_id} at {address} with L={length} runs past register 65535; "
                "refusing the chain"
            )
            raise SunSpecError(msg)
        models.append(instance)
        address = instance.end


def _check_reply(regs: Sequence[int], count: int, address: int) -> None:
    if len(regs) != count:
        msg = f"read of {count} registers at {address} returned {len(regs)}"
        raise SunSpecError(msg)


# ---------------------------------------------------------------------------------------------
# Binding


def _to_point(key: str, instance: ModelInstance, pd: PointDef) -> Point:
    scale = 1.0
    scale_factor = None
    if isinstance(pd.sf, int):
        scale = 10.0**pd.sf
    elif isinstance(pd.sf, str):
        scale_factor = f"{key}.{pd.sf}"
    return Point(
        name=f"{key}.{pd.name}",
        address=instance.address + pd.offset,
        table=Table.HOLDING,
        type=pd.type,
        count=pd.size,
        access=pd.access,
        scale=scale,
        scale_factor=scale_factor,
        units=pd.units,
        symbols=_symbols_on_wire(pd),
        not_implemented=pd.not_implemented,
        description=pd.label or pd.name,
    )


def _all_points(chain: Chain, counts: Mapping[str, int]) -> dict[str, Point]:
    points: dict[str, Point] = {}
    for key, instance in chain.named().items():
        if not has_model(instance.id):
            continue  # kept in the chain, but there is nothing to bind
        prefix = f"{key}."
        mine = {k.removeprefix(prefix): v for k, v in counts.items() if k.startswith(prefix)}
        for pd in model(instance.id).layout(mine, instance.length):
            points[f"{key}.{pd.name}"] = _to_point(key, instance, pd)
    # A point whose scale factor lies past the device's L cannot be decoded: leave it out.
    return {
        name: p for name, p in points.items() if p.scale_factor is None or p.scale_factor in points
    }


def bind(
    chain: Chain,
    wanted: Iterable[str] | None = None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Point]:
    """Points of the chain's known models, named ``"<model>.<point>"`` with absolute addresses.

    ``wanted`` restricts the result to those names plus the scale-factor points they need.
    ``counts`` gives repeating-group counts per instance, ``{"705.NPt": 4, "705.NCrv": 3}``
    (read them from the device first; without them only first repetitions are bound).
    """
    points = _all_points(chain, counts or {})
    if wanted is None:
        return points
    names = list(wanted)
    missing = [n for n in names if n not in points]
    if missing:
        raise SunSpecError(
            "; ".join(_unknown(n, chain, points) for n in missing)
            + f" (the device has {chain.describe()})"
        )
    out: dict[str, Point] = {}
    for name in names:
        p = points[name]
        out[name] = p
        if p.scale_factor is not None:
            out[p.scale_factor] = points[p.scale_factor]
    return out


def _unknown(name: str, chain: Chain, points: Mapping[str, Point]) -> str:
    key, _, local = name.partition(".")
    instances = chain.named()
    why = f"no point {name!r}"
    if key not in instances:
        why += f": the device has no model {key}"
    elif not has_model(instances[key].id):
        why += f": model {instances[key].id} has no definition"
    elif local in {p.name for p in model(instances[key].id).layout({}, None)}:
        why += f": it lies past the end of the device's model (L={instances[key].length})"
    elif "[" in local:
        why += ": pass the repeating-group counts to bind()"
    return why + _suggest(name, points)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


# ---------------------------------------------------------------------------------------------
# Images for the simulator


@dataclass(frozen=True, slots=True)
class Image:
    """A SunSpec register map: ``registers`` by address, the ``points`` bound over it (as
    ``bind`` names them) and the ``chain`` a walk of it will find."""

    registers: dict[int, int]
    points: dict[str, Point]
    chain: Chain


def image(models: Sequence[tuple[int, Mapping[str, codec.Value]]], base: int = 40000) -> Image:
    """Lay out 'SunS', the models and the end marker from ``base``.

    Values are in engineering units (or symbol names), keyed by the point's name within the
    model (``"W"``, ``"PFWInj.PF"``, ``"Crv[2].Pt[1].V"``); scale-factor points take their raw
    exponent and default to 0; count points default to 0 and decide how many repetitions are
    laid out; every other point left out reads "not implemented".
    """
    layouts: list[tuple[ModelDef, tuple[PointDef, ...], Mapping[str, codec.Value]]] = []
    instances: list[ModelInstance] = []
    address = base + 2
    counts: dict[int, dict[str, int]] = {}
    for index, (model_id, values) in enumerate(models):
        mdef = model(model_id)
        mine = {g.path: 0 for g in mdef.repeating_groups if g.count == 0}
        for g in mdef.repeating_groups:
            if isinstance(g.count, str):
                n = values.get(g.count, 0)
                if not isinstance(n, int) or n < 0:
                    msg = f"model {model_id}: count point {g.count} needs a count, not {n!r}"
                    raise SunSpecError(msg)
                mine[g.count] = n
        counts[index] = mine
        laid = mdef.layout(mine)
        names = {p.name for p in laid}
        for given in values:
            if given in ("ID", "L"):
                msg = f"model {model_id}: {given} is set by the layout, not by a value"
                raise SunSpecError(msg)
            if given not in names:
                raise SunSpecError(
                    f"model {model_id} has no point {given!r}" + _suggest(given, names)
                )
        length = max(p.offset + p.size for p in laid) - 2
        instances.append(ModelInstance(model_id, address, length))
        layouts.append((mdef, laid, values))
        address += 2 + length
    if base < 0 or address + 1 > _LAST:
        msg = f"the image from base {base} runs past register 65535"
        raise SunSpecError(msg)
    chain = Chain(base, tuple(instances), ended=True)
    keys = list(chain.named())
    all_counts = {f"{keys[i]}.{k}": v for i, c in counts.items() for k, v in c.items()}
    points = bind(chain, counts=all_counts)
    registers = {base: SUNS_MARKER[0], base + 1: SUNS_MARKER[1]}
    for index, (key, instance) in enumerate(zip(keys, instances, strict=True)):
        mdef, laid, values = layouts[index]
        registers[instance.address] = mdef.id
        registers[instance.address + 1] = instance.length
        for pd in laid[2:]:
            point = points[f"{key}.{pd.name}"]
            words = _registers_for(point, pd, values, counts[index])
            registers.update(
                zip(range(point.address, point.address + point.count), words, strict=True)
            )
    registers[address] = END_ID
    registers[address + 1] = 0
    return Image(registers, points, chain)


def _registers_for(
    point: Point, pd: PointDef, values: Mapping[str, codec.Value], counts: Mapping[str, int]
) -> list[int]:
    if pd.name in values:
        sf = None
        if point.scale_factor is not None:
            sf_name = point.scale_factor.split(".", 1)[1]
            raw_sf = values.get(sf_name, 0)
            if not isinstance(raw_sf, int):
                msg = f"{point.scale_factor}: a scale factor is an integer exponent, not {raw_sf!r}"
                raise SunSpecError(msg)
            sf = raw_sf
        try:
            return codec.encode(point, values[pd.name], sf)
        except codec.CodecError as exc:
            raise SunSpecError(str(exc)) from exc
    if pd.sunspec_type == "sunssf":
        return [0]
    if pd.name in counts:  # a count point: as many repetitions as were laid out
        return [counts[pd.name]]
    pattern = pd.not_implemented or 0
    return [(pattern >> (16 * (pd.size - 1 - i))) & 0xFFFF for i in range(pd.size)]


__all__ = [
    "DEFAULT_BASES",
    "END_ID",
    "SUNS_MARKER",
    "Chain",
    "GroupDef",
    "Image",
    "ModelDef",
    "ModelInstance",
    "PointDef",
    "ReadRequest",
    "SunSpecError",
    "Walk",
    "bind",
    "has_model",
    "image",
    "known_models",
    "model",
    "symbol_value",
    "walk",
]
