"""Sweep specifications: the knobs swept, their values, dies and seeds, validated and expanded.

A sweep is the Cartesian product of its axes (each knob's values, in the
order given) times the training seeds times the dies.  The knobs are the
fields of :class:`~analogprop.circuit.Mismatch` (device-to-device spreads
``*_dtod`` fixed per die, cycle-to-cycle noise ``*_std``) and the crossbar
design knobs the circuit driver takes (``resolution_bits``, ``g_min``,
``g_max``, ``w_max``; levels crossbar and vground), and the virtual-ground crossbar's non-idealities
(level vground): ``wire_r`` (ohm per row and column wire segment, IR drop; or ``wire_r_row`` and ``wire_r_col``
apart), ``opamp_offset``, ``gradient``, ``field_std``.  A knob with one value is a fixed setting; the vground
settings ``tile`` and ``opamp_gain`` (None: an exact virtual ground) are fixed per
sweep.  With ``circuit_spec`` (a user's circuit specification, :mod:`.own`) the knobs are ``temperature`` (C)
and ``mismatch_scale`` (a factor on every sigma the specification gives) and no others.

Dies are die seeds ``0 .. dies-1``: a die's device deviations depend only
on its seed (see :mod:`analogprop.circuit.mismatch`), so the same die seen
at a larger spread has the same deviations scaled up.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..runs.build import complete, train_config
from ..circuit.description import parse_level
from ..config import RunConfig
from ..circuit.mismatch import CrossbarDesign, Mismatch
from ..circuit.nonideal import Nonidealities
from ..circuit.user_spec import load_spec
from ..drivers.user_circuit import spec_digest
from ..errors import AnalogpropError, ConfigError

MISMATCH_KNOBS = tuple(f.name for f in fields(Mismatch))
#: CrossbarDesign fields a run configuration sets (the circuit section's design settings).
DESIGN_KNOBS = tuple(f.name for f in fields(CrossbarDesign) if f.name not in ("leak", "v_rail"))
#: Nonidealities fields a vground sweep varies per point, and ``wire_r`` (both wire segments at once).
VGROUND_KNOBS = ("wire_r", "wire_r_row", "wire_r_col", "opamp_offset", "gradient", "field_std")
#: knobs of a sweep on a user's own circuit (``circuit_spec``)
OWN_KNOBS = ("temperature", "mismatch_scale")
KNOBS = MISMATCH_KNOBS + DESIGN_KNOBS + VGROUND_KNOBS + OWN_KNOBS
#: the ``level`` of a sweep (and its rows) on a user's own circuit
OWN_LEVEL = "own"
#: design knobs apply to the levels with conductance pairs; vground knobs and settings to the vground level only
PAIR_LEVELS = ("crossbar", "vground")

_RUN = RunConfig()
#: Settings of a sweep besides its grid, with their defaults: a run's own settings default as in the
#: configuration tree (:mod:`analogprop.config`); seeds, dies and fine-tuning are the sweep's.
SETTINGS = {
    **{k: v for k, v in _RUN.to_flat().items()
       if k in ("dataset", "data_dir", "arch", "epochs", "beta", "batch_size", "tol", "max_steps")},
    "lrs": _RUN.training.lrs, "train_samples": _RUN.data.train_subset, "test_samples": _RUN.data.test_subset, "level": _RUN.circuit.level,
    "seeds": [0], "dies": 3, "finetune_epochs": 0, "circuit_lrs": None,
    "tile": _RUN.circuit.tile, "opamp_gain": _RUN.circuit.opamp_gain, "circuit_spec": None,
}
#: the vground settings fixed for a whole sweep (passed to the circuit section as ``driver_<name>``)
VGROUND_SETTINGS = ("tile", "opamp_gain")


@dataclass
class SweepSpec:
    """Everything that defines a sweep's rows: grid axes and the shared training settings."""

    grid: dict[str, list] = field(default_factory=dict)
    settings: dict = field(default_factory=lambda: dict(SETTINGS))

    def __getattr__(self, name):
        try:
            return self.__dict__["settings"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return {"grid": self.grid, **self.settings}

    def knob_names(self) -> list[str]:
        return list(self.grid)

    def points(self) -> list[dict]:
        """Every (knob values, seed, die) task of the sweep, in a fixed order, each with its ``key``."""
        out, shared = [], self.shared()
        combos = itertools.product(*self.grid.values()) if self.grid else [()]
        for i, values in enumerate(combos):
            knobs = dict(zip(self.grid, values))
            for seed in self.seeds:
                for die in range(self.dies):
                    task = {"point": i, "seed": seed, "die": die, "knobs": knobs, **shared}
                    task["key"] = digest({k: v for k, v in task.items() if k != "point"})
                    out.append(task)
        return out

    def shared(self) -> dict:
        """Settings every task of the sweep carries (what its result depends on; the vground settings only at
        that level; a user's specification by path and by the digest of its files)."""
        keys = ("dataset", "data_dir", "train_samples", "test_samples", "arch", "level", "epochs", "finetune_epochs",
                "beta", "lrs", "circuit_lrs", "batch_size", "tol", "max_steps")
        keys += VGROUND_SETTINGS if self.settings["level"] == "vground" else ()
        out = {k: self.settings[k] for k in keys}
        if self.settings["circuit_spec"] is not None:
            out.update(circuit_spec=self.settings["circuit_spec"], spec_digest=spec_digest(self.settings["circuit_spec"]))
        return out


def digest(obj) -> str:
    """Short stable hash of a JSON-able object (row and reference keys)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def parse_grid_option(text: str) -> tuple[str, list]:
    """``KNOB=V1,V2,...`` -> (knob, values)."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError(f"grid option {text!r} is not KNOB=V1,V2,... (e.g. g_dtod=0,0.1,0.2)")
    return name.strip(), [_number(name.strip(), v) for v in values.split(",")]


def _number(knob, value):
    """A knob value as float (``resolution_bits``: int when whole), so that 0, 0.0 and "0" give the same key."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"grid knob {knob}: value {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"grid knob {knob}: value {value!r} is not a number")
    if knob == "resolution_bits":
        return int(value) if float(value).is_integer() else value
    return float(value)


def read_spec_file(path) -> dict:
    """A sweep file (TOML or JSON): settings at the top level and a ``[grid]`` table of knob -> list of values."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read sweep file ({e.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: malformed sweep file ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file holds a table of settings")
    unknown = sorted(set(data) - set(SETTINGS) - {"grid"})
    if unknown:
        raise ConfigError(f"{path}: unknown sweep settings {unknown} (known: grid, {', '.join(SETTINGS)})")
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: 'grid' must be a table of knob = [values]")
    for k, v in grid.items():
        if not isinstance(v, list):
            grid[k] = [v]
    return data


def make_spec(file_settings: dict | None = None, grid_options=(), **overrides) -> SweepSpec:
    """Defaults <- sweep file <- command-line settings and ``KNOB=V,...`` options; then validate."""
    settings = dict(SETTINGS)
    grid: dict[str, list] = {}
    file_settings = dict(file_settings or {})
    grid.update(file_settings.pop("grid", {}))
    settings.update({k: v for k, v in file_settings.items() if v is not None})
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(settings["opamp_gain"], str) and settings["opamp_gain"].strip().lower() == "none":
        settings["opamp_gain"] = None   # an exact virtual ground (TOML has no null)
    for text in grid_options:
        name, values = parse_grid_option(text)
        grid[name] = values
    return validate(SweepSpec({k: [_number(k, x) for x in v] for k, v in grid.items()}, settings))


def validate(spec: SweepSpec) -> SweepSpec:
    """Refuse unknown knobs, out-of-range values and settings the trainer would refuse, naming them."""
    s = spec.settings
    own = _validate_own(spec)
    if not own:
        s["level"] = parse_level(s["level"])
    for name, values in spec.grid.items():
        if name not in KNOBS:
            raise ConfigError(f"unknown sweep knob {name!r} (known: {', '.join(KNOBS)})")
        if not values:
            raise ConfigError(f"grid knob {name} has no values")
        if len(set(values)) != len(values):
            raise ConfigError(f"grid knob {name} repeats a value: {values}")
        if own != (name in OWN_KNOBS):
            raise ConfigError(f"grid knob {name} describes the built-in circuit; with circuit_spec (--circuit-spec) "
                              f"the knobs are {', '.join(OWN_KNOBS)}" if own else
                              f"grid knob {name} applies to a circuit of your own: give circuit_spec "
                              f"(--circuit-spec FILE)")
        if name in DESIGN_KNOBS and s["level"] not in PAIR_LEVELS:
            raise ConfigError(f"grid knob {name} is a crossbar design knob; sweep it with level crossbar or vground")
        if name in VGROUND_KNOBS and s["level"] != "vground":
            raise ConfigError(f"grid knob {name} is a virtual-ground crossbar knob; sweep it with level vground")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"grid knob {name}: value {v!r} is not a finite number")
            try:
                if name in MISMATCH_KNOBS:
                    Mismatch(**{name: v})
                elif name == "resolution_bits":
                    CrossbarDesign(resolution_bits=v)
                elif name in VGROUND_KNOBS + ("mismatch_scale",) and v < 0:
                    raise ConfigError(f"{name} must be a finite number >= 0, got {v:g}")
                elif name == "temperature" and not v > -273.15:
                    raise ConfigError(f"{v:g} C is at or below absolute zero; give temperatures above -273.15 C")
            except ConfigError as e:
                raise ConfigError(f"grid knob {name}: {e}") from None
    for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in spec.grid.items()
                                     if k in DESIGN_KNOBS]):
        try:
            CrossbarDesign(**dict(combo))
        except ConfigError as e:
            raise ConfigError(f"grid point {dict(combo)}: {e}") from None
    _validate_vground(spec)
    s["seeds"] = _int_list("seeds", s["seeds"], 0)
    fe = s["finetune_epochs"]
    if isinstance(fe, bool) or not isinstance(fe, int) or fe < 0:
        raise ConfigError(f"finetune_epochs must be a whole number >= 0, got {fe!r}")
    if isinstance(s["dies"], bool) or not isinstance(s["dies"], int) or s["dies"] < 1:
        raise ConfigError(f"dies must be a whole number >= 1 of die seeds, got {s['dies']!r}")
    for name in ("train_samples", "test_samples"):
        if s[name] is not None and (isinstance(s[name], bool) or not isinstance(s[name], int) or s[name] < 1):
            raise ConfigError(f"{name} must be a whole number >= 1, got {s[name]!r}")
    for lrs in ("lrs", "circuit_lrs"):
        v = s[lrs]
        if v is not None:
            if not isinstance(v, (list, tuple)) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                                for x in v):
                raise ConfigError(f"sweep settings: {lrs} must be a list of numbers, one per layer pair or one "
                                  f"for all, e.g. [0.5, 0.2], got {v!r}")
            s[lrs] = [float(x) for x in v]
    try:
        cfg = complete({k: s[k] for k in ("dataset", "data_dir", "arch", "epochs", "beta", "lrs", "batch_size",
                                          "tol", "max_steps")})
        if not re.fullmatch(r"\d+(-\d+)+", cfg["arch"]):
            raise ConfigError(f"architecture {cfg['arch']}: the circuit level compiles dense layered networks only")
        s["arch"] = cfg["arch"]
        rates = train_config(cfg).lrs  # the default rule of the tree when the sweep gives none
        n_pairs = len(rates)
        s["lrs"] = s["lrs"] or [float(x) for x in rates]
        if s["circuit_lrs"] is not None:
            train_config({**cfg, "lrs": s["circuit_lrs"]})
    except AnalogpropError as e:
        raise ConfigError(f"sweep settings: {e}") from None
    for lrs in ("lrs", "circuit_lrs"):
        if s[lrs] is not None and len(s[lrs]) == 1:
            s[lrs] = s[lrs] * n_pairs
    return spec


def _validate_own(spec: SweepSpec) -> bool:
    """With ``circuit_spec``: the specification loads (its path made absolute), ``level`` is left at its default
    (then set to :data:`OWN_LEVEL`) and ``circuit_lrs`` is given.  True when the sweep is on a user's circuit."""
    s = spec.settings
    path = s["circuit_spec"]
    if path is None:
        if s["level"] == OWN_LEVEL:
            raise ConfigError(f"sweep setting level {OWN_LEVEL} is a circuit of your own: give circuit_spec "
                              f"(--circuit-spec FILE)")
        return False
    if not isinstance(path, str) or not path:
        raise ConfigError(f"sweep setting circuit_spec must name a circuit specification file, got {path!r}")
    s["circuit_spec"] = str(load_spec(path).path)
    if s["level"] not in (SETTINGS["level"], OWN_LEVEL):
        raise ConfigError(f"sweep setting level ({s['level']}) selects a built-in circuit; with circuit_spec the "
                          f"circuit is the specification's: leave level out")
    s["level"] = OWN_LEVEL
    if s["circuit_lrs"] is None:
        raise ConfigError("sweep setting circuit_lrs: with circuit_spec give the in-circuit learning rates (in the "
                          "units of the specification's programming value, e.g. --circuit-lrs 3000,30000 for "
                          "netlists/user/cmos_vg.toml)")
    return True


def nonideal_settings(knobs: dict, settings: dict) -> dict:
    """The circuit section's vground settings (``driver_*`` keys) of one grid point: the sweep's fixed
    ``tile`` and ``opamp_gain`` and the point's vground knobs (``wire_r`` sets both wire segments)."""
    out = {f"driver_{k}": settings[k] for k in VGROUND_SETTINGS}
    for k, v in knobs.items():
        if k in VGROUND_KNOBS:
            names = ("wire_r_row", "wire_r_col") if k == "wire_r" else (k,)
            out.update({f"driver_{n}": v for n in names})
    return out


def _validate_vground(spec: SweepSpec) -> None:
    """The vground settings, and every combination of the vground knobs with them, as the circuit would take it."""
    s = spec.settings
    if s["level"] != "vground":
        for k in VGROUND_SETTINGS:
            if s[k] != SETTINGS[k]:
                fix = "" if s["level"] == OWN_LEVEL else "give level vground, or "
                raise ConfigError(f"sweep setting {k} ({s[k]}) applies to the virtual-ground crossbar: {fix}leave "
                                  f"{k} out")
        return
    if "wire_r" in spec.grid and {"wire_r_row", "wire_r_col"} & set(spec.grid):
        raise ConfigError("grid knob wire_r sets both wire_r_row and wire_r_col: sweep either wire_r or those two")
    tile, gain = s["tile"], s["opamp_gain"]
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ConfigError(f"sweep setting tile must be a whole number >= 1 of crosspoints, got {tile!r}")
    if gain is not None and (isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0
                             or not math.isfinite(gain)):
        raise ConfigError(f"sweep setting opamp_gain must be a finite number > 0 (V/V) or none (an exact virtual "
                          f"ground), got {gain!r}")
    names = [k for k in spec.grid if k in VGROUND_KNOBS]
    for values in itertools.product(*(spec.grid[k] for k in names)):
        point = dict(zip(names, values))
        kw = {k[len("driver_"):]: v for k, v in nonideal_settings(point, s).items()}
        kw["opamp_gain"] = math.inf if gain is None else gain
        try:
            Nonidealities(**kw)
        except ConfigError as e:
            raise ConfigError(f"grid point {point}: {e}") from None


def _int_list(name, values, lo):
    values = values if isinstance(values, (list, tuple)) else [values]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < lo for v in values):
        raise ConfigError(f"{name} must be a list of whole numbers >= {lo}, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} repeats a value: {values}")
    return list(values)

