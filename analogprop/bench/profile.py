"""Bench profiles: which instrument and channel realises each part of a board.

A profile is a TOML file (see ``instruments/*.toml``), validated on load;
every error names the file and the offending field, e.g.
``bench.toml: field 'inputs.limits': lower limit 2.0 is above upper limit 1.0``.

Sections:

* ``name``, ``sizes``: the board and the layer sizes it realises;
* ``[instruments.NAME]``: ``kind`` (voltage_source | dmm_scanner | smu | board),
  VISA ``resource``, ``timeout_ms``, expected ``idn`` prefix, ``channels = [first, last]``;
* ``[inputs]``, ``[targets]``: source channels applying x and y, their safe
  ``limits`` (volts) and ``compliance_a``;
* ``[states]``: scanner channels reading the dynamic neurons, layer by layer;
* ``[nudge]``: the nudge conductance beta, set as a board code and switched in
  for the nudged phase;
* ``[conductances]``: code range, the weight range it maps to linearly and the
  base address of each parameter block (row-major) on the board;
* ``[supply]``: the SMU powering the board (voltage, current limit);
* ``[timing]``: settle time per phase, repeats per read, ramp-down step, and
  the optional settling check (``settle_check_ms``, ``settle_tol_v``);
* ``[recovery]``: reconnect attempts after a timeout or dropped connection;
* ``[emulator]`` (optional): the simulated board's mismatch, noise and time constant,
  and the command set of the emulated SMU (``smu_language``).
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("voltage_source", "dmm_scanner", "smu", "board")
SMU_LANGUAGES = ("SCPI", "SCPI2400", "TSP")  # the command sets of a Keithley 2450 (*LANG)
_SOCKET = re.compile(r"^TCPIP\d*::[^:]+::([^:]*)::SOCKET$")
_RESOURCE = re.compile(r"^(TCPIP\d*::[^:]+::\d+::SOCKET|TCPIP\d*::[^:]+(::[^:]+)?::INSTR|ASRL[^:]+::INSTR|GPIB\d*::\d+(::\d+)?::INSTR|USB\d*::.+::INSTR)$")


@dataclass(frozen=True)
class InstrumentSpec:
    name: str
    kind: str
    resource: str
    timeout_ms: int
    idn: str
    channels: tuple[int, int]

    def has(self, first: int, last: int) -> bool:
        return self.channels[0] <= first <= last <= self.channels[1]


@dataclass(frozen=True)
class SourceChannels:
    """A contiguous block of source channels applying one vector (inputs or targets)."""

    instrument: str
    channels: tuple[int, int]
    limits: tuple[float, float]
    compliance_a: float

    @property
    def count(self) -> int:
        return self.channels[1] - self.channels[0] + 1


@dataclass(frozen=True)
class Conductances:
    instrument: str
    codes: tuple[int, int]
    weight_range: tuple[float, float]
    address_count: int
    base: dict = field(default_factory=dict)

    @property
    def lsb(self) -> float:
        """Weight change of one code step."""
        return (self.weight_range[1] - self.weight_range[0]) / (self.codes[1] - self.codes[0])


@dataclass(frozen=True)
class Emulation:
    """The emulated board (``[emulator]``): ``physics`` "ideal" (the network with a log-normal
    gain per device) or "circuit" (:mod:`analogprop.circuit`, behavioural level with node
    clamps; ``mismatch`` is its ``g_dtod``, the ``*_dtod`` and ``write_noise_std`` its other spreads);
    ``smu_language`` is the command set the emulated 2450 answers ``*LANG?`` with."""

    seed: int = 0
    physics: str = "ideal"
    mismatch: float = 0.0
    gain_dtod: float = 0.0
    offset_dtod: float = 0.0
    leak_dtod: float = 0.0
    write_noise_std: float = 0.0
    read_noise_v: float = 0.0
    tau_ms: float = 0.0
    resolution_v: float = 1e-6
    supply_current_a: float = 0.002
    smu_language: str = "SCPI"


@dataclass(frozen=True)
class Profile:
    path: str
    name: str
    sizes: tuple[int, ...]
    instruments: dict
    inputs: SourceChannels
    targets: SourceChannels
    states_instrument: str
    states_channels: tuple[int, int]
    nudge_instrument: str
    nudge_beta_max: float
    nudge_codes: tuple[int, int]
    conductances: Conductances
    supply_instrument: str
    supply_voltage: float
    supply_current_limit_a: float
    supply_limits: tuple[float, float]
    settle_free_s: float
    settle_nudged_s: float
    repeats: int
    ramp_step_v: float
    ramp_dwell_s: float
    reconnect_attempts: int
    reconnect_backoff_s: float
    emulation: Emulation
    settle_check_s: float = 0.0   # > 0: scan again this much later; the change is the phase's residual
    settle_tol_v: float = 1e-3    # a sample whose states moved more than this between the scans is unconverged

    def with_resources(self, resources: dict) -> "Profile":
        """A copy whose instruments use other resource strings (e.g. an emulator's ports)."""
        inst = {n: replace(s, resource=resources.get(n, s.resource)) for n, s in self.instruments.items()}
        return replace(self, instruments=inst)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every parameter block the board holds (see :mod:`analogprop.model.network`)."""
        s = self.sizes
        shapes = {f"fwd{k}": (s[k + 1], s[k]) for k in range(len(s) - 1)}
        shapes.update({f"bwd{k}": (s[k], s[k + 1]) for k in range(1, len(s) - 1)})
        shapes.update({f"bias{k}": (s[k],) for k in range(1, len(s)) if f"bias{k}" in self.conductances.base})
        return shapes


class _Table:
    """A TOML table with its dotted path, for error messages naming the field."""

    def __init__(self, where: str, path: str, data: dict):
        self.where, self.path, self.data = where, path, data
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, msg: str):
        raise ConfigError(f"{self.where}: field '{self.field(key)}': {msg}")

    def get(self, key, kind, default=...):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                self.fail(key, "missing")
            return default
        v = self.data[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            self.fail(key, f"expected {getattr(kind, '__name__', kind)}, got {type(v).__name__} {v!r}")
        return v

    def number(self, key, lo=None, hi=None, default=..., kind=float, open_lo=False):
        v = self.get(key, kind, default)
        if v is None:
            return v
        if v != v or v in (float("inf"), float("-inf")):
            self.fail(key, f"must be finite, got {v}")
        if lo is not None and (v < lo or (open_lo and v == lo)):
            self.fail(key, f"must be {'>' if open_lo else '>='} {lo}, got {v}")
        if hi is not None and v > hi:
            self.fail(key, f"must be <= {hi}, got {v}")
        return v

    def pair(self, key, kind=float, default=..., ordered=True):
        v = self.get(key, list, default)
        if v is None:
            return v
        if len(v) != 2:
            self.fail(key, f"expected [low, high], got {v!r}")
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or (kind is int and isinstance(x, float)) for x in v):
            self.fail(key, f"expected two {kind.__name__} values, got {v!r}")
        if not all(math.isfinite(x) for x in v):
            self.fail(key, f"limits must be finite, got {v!r}")
        a, b = (kind(x) for x in v)
        if ordered and a > b:
            self.fail(key, f"lower limit {a} is above upper limit {b}")
        return a, b

    def table(self, key, required=True) -> "_Table | None":
        v = self.get(key, dict, ... if required else None)
        return None if v is None else _Table(self.where, self.field(key), v)

    def done(self):
        extra = sorted(set(self.data) - self.used)
        if extra:
            self.fail(extra[0], "unknown field" + (f" (also unknown: {', '.join(extra[1:])})" if extra[1:] else ""))


def _instrument(t: _Table, name: str) -> InstrumentSpec:
    kind = t.get("kind", str)
    if kind not in KINDS:
        t.fail("kind", f"unknown instrument kind {kind!r} (choose {', '.join(KINDS)})")
    resource = t.get("resource", str)
    socket = _SOCKET.match(resource)
    if socket and not (re.fullmatch(r"\d+", socket.group(1)) and 1 <= int(socket.group(1)) <= 65535):
        t.fail("resource", f"{resource!r}: port {socket.group(1)!r} is not a TCP port (an integer in 1..65535)")
    if not _RESOURCE.match(resource):
        t.fail("resource", f"{resource!r} is not a VISA resource string such as TCPIP::127.0.0.1::5025::SOCKET")
    timeout = t.number("timeout_ms", 1, 600_000, kind=int)
    idn = t.get("idn", str)
    ch = t.pair("channels", int, default=(0, 0))
    t.done()
    return InstrumentSpec(name, kind, resource, timeout, idn, ch)


def _uses(t: _Table, key: str, instruments: dict, kinds: tuple[str, ...]) -> str:
    name = t.get(key, str)
    if name not in instruments:
        t.fail(key, f"no instrument named {name!r} (defined: {', '.join(sorted(instruments))})")
    if instruments[name].kind not in kinds:
        t.fail(key, f"instrument {name!r} is a {instruments[name].kind}; expected {' or '.join(kinds)}")
    return name


def _channels(t: _Table, instruments: dict, inst: str, count: int, what: str) -> tuple[int, int]:
    ch = t.pair("channels", int)
    n = ch[1] - ch[0] + 1
    if n != count:
        t.fail("channels", f"{ch[0]}..{ch[1]} is {n} channels; the board has {count} {what}")
    if not instruments[inst].has(*ch):
        t.fail("channels", f"{ch[0]}..{ch[1]} is outside instrument {inst!r}'s channels {instruments[inst].channels}")
    return ch


def _sources(t: _Table, instruments: dict, count: int, what: str) -> SourceChannels:
    inst = _uses(t, "instrument", instruments, ("voltage_source",))
    ch = _channels(t, instruments, inst, count, what)
    limits = t.pair("limits")
    comp = t.number("compliance_a", 0, 10, open_lo=True)
    t.done()
    return SourceChannels(inst, ch, limits, comp)


def parse_profile(text: str, where: str = "<profile>") -> Profile:
    """Validate a profile's TOML text; ``where`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML ({e})") from None
    root = _Table(where, "", data)
    name = root.get("name", str)
    sizes = root.get("sizes", list)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        root.fail("sizes", f"expected at least two positive layer sizes, got {sizes!r}")
    sizes = tuple(sizes)
    n_dyn = sum(sizes[1:])

    it = root.table("instruments")
    instruments = {}
    for iname in it.data:
        instruments[iname] = _instrument(it.table(iname), iname)
    it.done()
    seen = {}
    for s in instruments.values():
        if s.resource in seen:
            raise ConfigError(f"{where}: field 'instruments.{s.name}.resource': {s.resource} is already used by "
                              f"instrument {seen[s.resource]!r}")
        seen[s.resource] = s.name

    inputs = _sources(root.table("inputs"), instruments, sizes[0], "inputs")
    targets = _sources(root.table("targets"), instruments, sizes[-1], "outputs")
    if inputs.instrument == targets.instrument and not (inputs.channels[1] < targets.channels[0] or targets.channels[1] < inputs.channels[0]):
        raise ConfigError(f"{where}: field 'targets.channels': {targets.channels} overlaps inputs.channels {inputs.channels}")

    st = root.table("states")
    states_inst = _uses(st, "instrument", instruments, ("dmm_scanner",))
    states_ch = _channels(st, instruments, states_inst, n_dyn, "dynamic neurons")
    st.done()

    nt = root.table("nudge")
    nudge_inst = _uses(nt, "instrument", instruments, ("board",))
    beta_max = nt.number("beta_max", 0, 100, open_lo=True)
    nudge_codes = nt.pair("codes", int)
    if nudge_codes[0] != 0 or nudge_codes[1] < 1:
        nt.fail("codes", f"expected [0, max] with max >= 1, got {list(nudge_codes)}")
    nt.done()

    ct = root.table("conductances")
    cond_inst = _uses(ct, "instrument", instruments, ("board",))
    codes = ct.pair("codes", int)
    if codes[0] < 0 or codes[1] <= codes[0]:
        ct.fail("codes", f"expected [low, high] with 0 <= low < high, got {list(codes)}")
    wrange = ct.pair("weight_range")
    if wrange[0] >= wrange[1]:
        ct.fail("weight_range", f"expected low < high, got {list(wrange)}")
    count = ct.number("address_count", 1, 10_000_000, kind=int)
    bt = ct.table("base")
    shapes = {f"fwd{k}": sizes[k] * sizes[k + 1] for k in range(len(sizes) - 1)}
    shapes.update({f"bwd{k}": sizes[k] * sizes[k + 1] for k in range(1, len(sizes) - 1)})
    optional = {f"bias{k}": sizes[k] for k in range(1, len(sizes))}
    base = {}
    for pname in list(shapes) + [p for p in optional if p in bt.data]:
        base[pname] = bt.number(pname, 0, count - 1, kind=int)
    bt.done()
    has_bias = [p for p in optional if p in base]
    if has_bias and len(has_bias) != len(optional):
        bt.fail(sorted(set(optional) - set(has_bias))[0], "missing (give a base for every bias block or for none)")
    blocks = sorted((base[p], p, {**shapes, **optional}[p]) for p in base)
    for (a, pa, na), (b, pb, _) in zip(blocks, blocks[1:]):
        if a + na > b:
            bt.fail(pb, f"block {pb} at {b} overlaps {pa} (addresses {a}..{a + na - 1})")
    last_a, last_p, last_n = blocks[-1]
    if last_a + last_n > count:
        bt.fail(last_p, f"block {last_p} ends at address {last_a + last_n - 1}, beyond address_count {count}")
    ct.done()
    cond = Conductances(cond_inst, codes, wrange, count, base)

    su = root.table("supply")
    supply_inst = _uses(su, "instrument", instruments, ("smu",))
    supply_limits = su.pair("limits")
    volts = su.number("voltage")
    if not supply_limits[0] <= volts <= supply_limits[1]:
        su.fail("voltage", f"{volts} V is outside supply.limits {list(supply_limits)}")
    ilim = su.number("current_limit_a", 0, 10, open_lo=True)
    su.done()

    tt = root.table("timing")
    settle_free = tt.number("settle_free_ms", 0, 60_000) / 1e3
    settle_nudged = tt.number("settle_nudged_ms", 0, 60_000) / 1e3
    repeats = tt.number("repeats", 1, 1000, kind=int, default=1)
    ramp_step = tt.number("ramp_step_v", 0, 100, open_lo=True, default=0.25)
    ramp_dwell = tt.number("ramp_dwell_ms", 0, 10_000, default=1.0) / 1e3
    settle_check = tt.number("settle_check_ms", 0, 60_000, default=0.0) / 1e3
    settle_tol = tt.number("settle_tol_v", 0, 100, open_lo=True, default=1e-3)
    tt.done()

    rt = root.table("recovery", required=False) or _Table(where, "recovery", {})
    attempts = rt.number("reconnect_attempts", 0, 100, kind=int, default=3)
    backoff = rt.number("backoff_ms", 0, 60_000, default=50.0) / 1e3
    rt.done()

    et = root.table("emulator", required=False) or _Table(where, "emulator", {})
    physics = et.get("physics", str, "ideal")
    if physics not in ("ideal", "circuit"):
        et.fail("physics", f"expected 'ideal' or 'circuit', got {physics!r}")
    language = et.get("smu_language", str, "SCPI")
    if language not in SMU_LANGUAGES:
        et.fail("smu_language", f"expected one of {', '.join(SMU_LANGUAGES)}, got {language!r}")
    spreads = {k: et.number(k, 0, 1, default=0.0) for k in ("gain_dtod", "offset_dtod", "leak_dtod", "write_noise_std")}
    if physics == "ideal" and any(spreads.values()):
        et.fail(next(k for k, v in spreads.items() if v), "only used with physics = \"circuit\"")
    emu = Emulation(seed=et.number("seed", 0, kind=int, default=0), physics=physics, **spreads,
                    mismatch=et.number("mismatch", 0, 1, default=0.0),
                    read_noise_v=et.number("read_noise_v", 0, 1, default=0.0),
                    tau_ms=et.number("tau_ms", 0, 60_000, default=0.0),
                    resolution_v=et.number("resolution_v", 0, 1, open_lo=True, default=1e-6),
                    supply_current_a=et.number("supply_current_a", 0, 10, default=0.002), smu_language=language)
    et.done()
    root.done()
    return Profile(where, name, sizes, instruments, inputs, targets, states_inst, states_ch, nudge_inst,
                   beta_max, nudge_codes, cond, supply_inst, volts, ilim, supply_limits, settle_free,
                   settle_nudged, repeats, ramp_step, ramp_dwell, attempts, backoff, emu,
                   settle_check_s=settle_check, settle_tol_v=settle_tol)


def load_profile(path) -> Profile:
    """Read and validate a bench profile."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"bench profile {path}: cannot be read ({e.strerror or e})") from None
    return parse_profile(text, str(path))
