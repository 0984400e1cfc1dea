"""A user's circuit specification (TOML): the neuron and synapse subcircuits a network is built from.

The file names a SPICE library (relative to the file) and, per role, a
subcircuit with its port contract:

* ``[neuron]``: ``pins`` in the ``.subckt`` order; ``input`` (the state node
  ``h``, where synapse currents and the nudge meet), ``output`` (``rho(h)``,
  read by an ideal unity-gain driver, so it is never loaded), ``supplies``
  (pin -> volts); ``sweep = [lo, hi, points]`` of the input voltage it is
  characterised over.
* ``[synapse]``: ``pins``; ``terminals = [a, b]`` (``a`` driven by the
  presynaptic neuron's output, ``b`` the postsynaptic input node); ``supplies``;
  ``[synapse.program]`` the weight-setting quantity: ``name``, ``kind`` ``pin``
  (a pin held at the value by a source, e.g. a gate voltage) or ``param`` (a
  ``.subckt`` parameter, e.g. a width or conductance), its range ``low``,
  ``high`` and the ``points`` of its table; ``sweep_a``, ``sweep_b``.
  ``differential = true`` (default) pairs two instances per connection, the
  second driven by the inverted output ``v_low + v_high - rho``, so that
  weights of both signs exist.
* ``[<role>.params]``: fixed ``.subckt`` parameters;
  ``[<role>.mismatch.<param>]``: a per-instance parameter drawn per die:
  ``normal`` (``nominal``, ``sigma``), ``lognormal`` (``nominal``, relative
  ``sigma``) or ``pelgrom`` (``nominal``, ``a_vt`` in V m, ``w``, ``l`` in m:
  ``sigma = a_vt / sqrt(w l)``, Pelgrom's law).
* ``temperature`` (degrees C), ``[network]``: ``v_low``/``v_high`` (the
  voltages meaning 0 and 1 for inputs, targets and states), ``g_unit``
  (siemens: the field's unit and the nudge conductance per unit of beta) and
  ``target_low``/``target_high`` (the voltages the nudge pulls an output node
  toward for a target 0 and 1; default ``v_low``/``v_high``: set them inside
  the output nodes' own range when that is much narrower than the inputs').

Draws come from ``default_rng([die, crc32(role.param), instance])``: a die
seed gives the same devices in every solver and netlist.
"""
from __future__ import annotations

import math
import tomllib
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError

DISTRIBUTIONS = {"normal": ("nominal", "sigma"), "lognormal": ("nominal", "sigma"),
                 "pelgrom": ("nominal", "a_vt", "w", "l")}
PROGRAM_KINDS = ("pin", "param")


class SpecError(ConfigError):
    """A circuit specification that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Mismatch:
    """One per-instance parameter's distribution."""

    param: str
    kind: str
    nominal: float
    sigma: float

    def draw(self, role: str, die: int, count: int) -> np.ndarray:
        rng = np.random.default_rng([die, zlib.crc32(f"{role}.{self.param}".encode())])
        z = rng.standard_normal(count)
        return self.nominal * np.exp(self.sigma * z) if self.kind == "lognormal" else self.nominal + self.sigma * z


@dataclass(frozen=True)
class Program:
    name: str
    kind: str
    low: float
    high: float
    points: int

    @property
    def grid(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.points)


@dataclass(frozen=True)
class Role:
    """A neuron or synapse subcircuit and its port contract."""

    role: str
    library: Path
    subckt: str
    pins: tuple
    supplies: dict
    params: dict
    mismatch: tuple
    sweeps: dict                       # axis name -> (lo, hi, points)
    input: str = ""                    # neuron
    output: str = ""                   # neuron
    terminals: tuple = ()              # synapse (a, b)
    program: Program | None = None     # synapse
    differential: bool = True          # synapse

    def grid(self, axis: str) -> np.ndarray:
        lo, hi, n = self.sweeps[axis]
        return np.linspace(lo, hi, n)

    def instance_params(self, die: int, count: int) -> list[dict]:
        """Per instance, its ``.subckt`` parameters (fixed ones and this die's mismatch draws)."""
        drawn = {m.param: m.draw(self.role, die, count) for m in self.mismatch}
        return [{**self.params, **{k: float(v[i]) for k, v in drawn.items()}} for i in range(count)]


@dataclass(frozen=True)
class CircuitSpec:
    path: Path
    temperature: float
    v_low: float
    v_high: float
    g_unit: float
    neuron: Role
    synapse: Role
    allow_outside: bool = False
    target_low: float | None = None
    target_high: float | None = None

    @property
    def span(self) -> float:
        return self.v_high - self.v_low

    @property
    def targets(self) -> tuple[float, float]:
        """Volts of a target 0 and 1 at the output nodes (``target_low``/``target_high``, default v_low/v_high)."""
        return (self.v_low if self.target_low is None else self.target_low,
                self.v_high if self.target_high is None else self.target_high)

    @property
    def root(self) -> Path:
        return self.path.parent

    def at_temperature(self, celsius: float) -> "CircuitSpec":
        return replace(self, temperature=_number(self.path, "temperature", celsius))


def _number(path, key, value, low=None, integer=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{path}: {key} must be a finite number, got {value!r}")
    if integer and not float(value).is_integer():
        raise SpecError(f"{path}: {key} must be a whole number, got {value!r}")
    if low is not None and value <= low:
        raise SpecError(f"{path}: {key} must be > {low:g}, got {value!r}")
    return int(value) if integer else float(value)


def _table(path, key, value) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{path}: {key} must be a table, got {value!r}")
    return value


def _known(path, prefix, table, keys) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise SpecError(f"{path}: unknown key {prefix}{unknown[0]} (accepted: {', '.join(keys)})")


def _name(path, key, value) -> str:
    if not isinstance(value, str) or not value.replace("_", "a").isalnum() or not value[:1].isalpha():
        raise SpecError(f"{path}: {key} must be a SPICE name (a letter, then letters, digits or '_'), got {value!r}")
    return value.lower()


def _sweep(path, key, value) -> tuple:
    if not isinstance(value, list) or len(value) != 3:
        raise SpecError(f"{path}: {key} must be [low, high, points], got {value!r}")
    lo, hi = _number(path, f"{key}[0]", value[0]), _number(path, f"{key}[1]", value[1])
    n = _number(path, f"{key}[2]", value[2], low=2, integer=True)
    if hi <= lo:
        raise SpecError(f"{path}: {key} must rise (high > low), got {value!r}")
    return lo, hi, n


def _mismatch(path, role, table) -> tuple:
    out = []
    for param, d in _table(path, f"{role}.mismatch", table).items():
        key = f"{role}.mismatch.{param}"
        d = _table(path, key, d)
        kind = d.get("distribution")
        if kind not in DISTRIBUTIONS:
            raise SpecError(f"{path}: {key}.distribution must be one of {', '.join(DISTRIBUTIONS)}, got {kind!r}")
        _known(path, f"{key}.", d, ("distribution",) + DISTRIBUTIONS[kind])
        nums = {k: _number(path, f"{key}.{k}", d.get(k, 0.0 if k == "nominal" else None),
                           low=None if k == "nominal" else 0.0) for k in DISTRIBUTIONS[kind] if k != "sigma"}
        sigma = nums["a_vt"] / math.sqrt(nums["w"] * nums["l"]) if kind == "pelgrom" else \
            _number(path, f"{key}.sigma", d.get("sigma"), low=-1e-300)
        out.append(Mismatch(_name(path, key, param), "normal" if kind == "pelgrom" else kind, nums["nominal"], sigma))
    return tuple(out)


_COMMON = ("subckt", "pins", "supplies", "params", "mismatch", "library")


def _role(path, role, t, library) -> Role:
    t = _table(path, role, t)
    own = {"neuron": ("input", "output", "sweep"),
           "synapse": ("terminals", "program", "differential", "sweep_a", "sweep_b")}[role]
    _known(path, f"{role}.", t, _COMMON + own)
    lib = t.get("library", library)
    if not isinstance(lib, str) or not lib:
        raise SpecError(f"{path}: {role}.library (or the top-level library) must name a SPICE library file, got {lib!r}")
    subckt = _name(path, f"{role}.subckt", t.get("subckt"))
    pins = t.get("pins")
    if not isinstance(pins, list) or not pins:
        raise SpecError(f"{path}: {role}.pins must list the subcircuit's pins in .subckt order, got {pins!r}")
    pins = tuple(_name(path, f"{role}.pins", p) for p in pins)
    if len(set(pins)) != len(pins):
        raise SpecError(f"{path}: {role}.pins names a pin twice: {list(pins)}")
    supplies = {_name(path, f"{role}.supplies", k): _number(path, f"{role}.supplies.{k}", v)
                for k, v in _table(path, f"{role}.supplies", t.get("supplies", {})).items()}
    params = {_name(path, f"{role}.params", k): _number(path, f"{role}.params.{k}", v)
              for k, v in _table(path, f"{role}.params", t.get("params", {})).items()}
    mismatch = _mismatch(path, role, t.get("mismatch", {}))
    kw = {}
    if role == "neuron":
        kw["input"] = _name(path, "neuron.input", t.get("input"))
        kw["output"] = _name(path, "neuron.output", t.get("output"))
        roles = [kw["input"], kw["output"], *supplies]
        sweeps = {"v": _sweep(path, "neuron.sweep", t.get("sweep"))}
    else:
        terms = t.get("terminals")
        if not isinstance(terms, list) or len(terms) != 2:
            raise SpecError(f"{path}: synapse.terminals must be [a, b] (presynaptic, postsynaptic), got {terms!r}")
        kw["terminals"] = tuple(_name(path, "synapse.terminals", p) for p in terms)
        p = _table(path, "synapse.program", t.get("program"))
        _known(path, "synapse.program.", p, ("name", "kind", "low", "high", "points"))
        if p.get("kind") not in PROGRAM_KINDS:
            raise SpecError(f"{path}: synapse.program.kind must be pin or param, got {p.get('kind')!r}")
        prog = Program(_name(path, "synapse.program.name", p.get("name")), p["kind"],
                       _number(path, "synapse.program.low", p.get("low")),
                       _number(path, "synapse.program.high", p.get("high")),
                       _number(path, "synapse.program.points", p.get("points", 11), low=2, integer=True))
        if prog.high <= prog.low:
            raise SpecError(f"{path}: synapse.program.high must exceed synapse.program.low, got {prog.low} and {prog.high}")
        kw["program"] = prog
        diff = t.get("differential", True)
        if not isinstance(diff, bool):
            raise SpecError(f"{path}: synapse.differential must be true or false, got {diff!r}")
        kw["differential"] = diff
        roles = [*kw["terminals"], *supplies] + ([prog.name] if prog.kind == "pin" else [])
        sweeps = {"a": _sweep(path, "synapse.sweep_a", t.get("sweep_a")),
                  "b": _sweep(path, "synapse.sweep_b", t.get("sweep_b"))}
        taken = {m.param for m in mismatch} | set(params)
        if prog.kind == "param" and prog.name in taken:
            raise SpecError(f"{path}: synapse.program.name {prog.name!r} is also a fixed or mismatch parameter")
    missing = [p for p in roles if p not in pins]
    if missing:
        raise SpecError(f"{path}: {role} pin {missing[0]!r} is not in {role}.pins {list(pins)}")
    unassigned = [p for p in pins if p not in roles]
    if unassigned:
        raise SpecError(f"{path}: {role}.pins {unassigned[0]!r} has no role (give it a supply voltage in "
                        f"{role}.supplies or name it as a port)")
    both = sorted(set(params) & {m.param for m in mismatch})
    if both:
        raise SpecError(f"{path}: {role}.params.{both[0]} is also drawn in {role}.mismatch")
    return Role(role, Path(lib), subckt, pins, supplies, params, mismatch, sweeps, **kw)


def parse_spec(data: dict, path) -> CircuitSpec:
    """The :class:`CircuitSpec` of a parsed TOML table ``data`` read from ``path``."""
    path = Path(path)
    _known(path, "", data, ("library", "temperature", "allow_outside", "network", "neuron", "synapse"))
    for role in ("neuron", "synapse"):
        if role not in data:
            raise SpecError(f"{path}: missing table [{role}]")
    net = _table(path, "network", data.get("network", {}))
    _known(path, "network.", net, ("v_low", "v_high", "g_unit", "target_low", "target_high"))
    v_low = _number(path, "network.v_low", net.get("v_low", 0.0))
    v_high = _number(path, "network.v_high", net.get("v_high", 1.0))
    if v_high <= v_low:
        raise SpecError(f"{path}: network.v_high must exceed network.v_low, got {v_low} and {v_high}")
    t_low = _number(path, "network.target_low", net.get("target_low", v_low))
    t_high = _number(path, "network.target_high", net.get("target_high", v_high))
    if t_high <= t_low:
        raise SpecError(f"{path}: network.target_high must exceed network.target_low, got {t_low} and {t_high}")
    allow = data.get("allow_outside", False)
    if not isinstance(allow, bool):
        raise SpecError(f"{path}: allow_outside must be true or false, got {allow!r}")
    return CircuitSpec(path, _number(path, "temperature", data.get("temperature", 27.0), low=-273.15), v_low, v_high,
                       _number(path, "network.g_unit", net.get("g_unit", 1e-5), low=0.0),
                       _role(path, "neuron", data["neuron"], data.get("library")),
                       _role(path, "synapse", data["synapse"], data.get("library")), allow, t_low, t_high)


def load_spec(path) -> CircuitSpec:
    """Read and check the specification file ``path``; :class:`SpecError` names the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise SpecError(f"cannot read circuit specification {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: not valid TOML ({e})") from None
    return parse_spec(data, path.resolve())
