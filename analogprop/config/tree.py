"""The run configuration tree, and its flat form (config.json).

:class:`RunConfig` holds ``seed`` (initial weights, sample order, every
random draw of training) and the sections of :mod:`.sections`.  Building one
checks every setting, then the rules between them (learning rates against the
architecture's layer pairs, driver-only features).

The flat form is the one run directories store: one key per setting, named
as the CLI dest (``beta``, ``solver``, ``driver``; ``driver_*`` for the
driver sections).  :meth:`RunConfig.to_flat` writes every common key and the
driver keys that differ from their defaults; :meth:`RunConfig.from_flat`
reads such a dict, takes defaults for keys it lacks (runs saved before a
setting existed) or holds as null, and refuses unknown keys by name.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import ClassVar

from ..errors import ConfigError
from .checks import Number, setting
from ..rates import resolve_lrs
from .sections import (DRIVER_ONLY, DRIVER_SECTIONS, SECTIONS, CircuitConfig, DataConfig, DriverConfig, Key,
                       ModelConfig, NgspiceConfig, SolverConfig, TrainingConfig, VisaConfig, key_of)

#: the training section's settings that analogprop.training.trainer.TrainConfig takes (besides seed)
_TRAINER_KEYS = ("beta", "lrs", "batch_size", "epochs", "symmetric", "random_sign", "checkpoint_every",
                 "keep_every", "lr_decay", "lr_decay_start", "weight_decay", "shift", "centered", "optimizer",
                 "adam_betas", "adam_eps", "feedback_lr_factor", "alignment_drift", "same_update")


def _suggest(name, known) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run is made of; ``RunConfig()`` is the default run (64-32-10 on the digits)."""

    SECTIONS: ClassVar[dict] = {s.NAME: s for s in SECTIONS}

    seed: int = setting(0, "seed of initial weights and sample order", Number(int, low=0), after="model.arch")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    ngspice: NgspiceConfig = field(default_factory=NgspiceConfig)
    visa: VisaConfig = field(default_factory=VisaConfig)

    def __post_init__(self):
        for f in fields(self):
            section = self.SECTIONS.get(f.name)
            value = getattr(self, f.name)
            if section is None:
                object.__setattr__(self, f.name, key_of(None, f).validate(value))
            elif not isinstance(value, section):
                raise ConfigError(f"{f.name} must be a {section.__name__} section, got {value!r}")
        self._check_rules()

    # -- the settings and their names ------------------------------------------
    @classmethod
    def keys(cls) -> list[Key]:
        """Every setting, in config.json order."""
        out = [k for f in fields(cls) if f.name in cls.SECTIONS for k in cls.SECTIONS[f.name].keys()]
        for f in fields(cls):
            if f.name not in cls.SECTIONS:
                key = key_of(None, f)
                out.insert(1 + [k.path for k in out].index(key.meta["after"]), key)
        return out

    def get(self, key: Key):
        return getattr(getattr(self, key.section), key.name) if key.section else getattr(self, key.name)

    # -- rules between settings ------------------------------------------------
    @property
    def n_pairs(self) -> int:
        """Number of layer pairs (k, k+1) of the architecture."""
        from ..model.conv_network import arch_sizes

        return len(arch_sizes(self.model.arch)) - 1

    @property
    def learning_rates(self) -> tuple[float, ...]:
        """One rate per layer pair: as given, one given rate for every pair, or the default rule."""
        return resolve_lrs(self.training.lrs, self.n_pairs)

    def _check_rules(self):
        try:
            self.learning_rates
        except ConfigError as e:
            raise ConfigError(f"{KEYS['lrs']}: for architecture {self.model.arch}, {e}") from None
        driver = self.driver.name
        if self.solver.over_relax != 1 and (driver != "ideal" or self.solver.method != "fast"):
            where = f"the {driver} driver" if driver != "ideal" else f"solver {self.solver.method}"
            raise ConfigError(f"{KEYS['over_relax']} {self.solver.over_relax:g} over-relaxes the ideal model's fast "
                              f"solver; {where} does not use it (use over_relax 1)")
        if driver != "ideal":
            if self.solver.nudge_steps:
                raise ConfigError(f"{KEYS['nudge_steps']} truncates the ideal model's nudged phase; the {driver} "
                                  "driver measures fixed points (use nudge_steps 0)")
            if self.model.linear_output:
                raise ConfigError(f"{KEYS['linear_output']} needs the ideal driver: the {driver} driver's output "
                                  "nodes are clamped to [0, 1]")
            if self.training.rule == "gradient":
                raise ConfigError(f"{KEYS['rule']} gradient needs the ideal network, which the {driver} driver "
                                  "does not expose")
        if driver == "visa":
            if self.visa.profile is None:
                raise ConfigError(f"driver visa needs {KEYS['driver_profile']}: a bench profile, see instruments/")
            if self.training.symmetric or self.training.random_sign:
                raise ConfigError(f"{KEYS['symmetric']} and {KEYS['random_sign']} need a negative beta, which "
                                  "the bench's resistive nudge cannot apply (driver visa)")
            if self.model.tied:
                raise ConfigError(f"{KEYS['tied']}: the visa driver programs forward and feedback devices "
                                  "independently, so weights cannot be tied")

    def unused_settings(self) -> list[Key]:
        """Driver settings that differ from their defaults in sections this run's driver does not read."""
        used = DRIVER_SECTIONS[self.driver.name]
        return [k for k in self.keys() if k.section in DRIVER_ONLY and k.section not in used
                and self.get(k) != k.default]

    def training_kwargs(self) -> dict:
        """Keyword arguments of :class:`analogprop.training.trainer.TrainConfig` (rates resolved for this architecture)."""
        out = {k: getattr(self.training, k) for k in _TRAINER_KEYS}
        out.update(lrs=self.learning_rates, seed=self.seed)
        return out

    # -- nested and flat forms ---------------------------------------------------
    @classmethod
    def check_names(cls, nested: dict) -> None:
        """Refuse unknown sections and settings by name, and sections that are not tables."""
        if not isinstance(nested, dict):
            raise ConfigError(f"a run configuration must be a table of sections, got {nested!r}")
        top = [f.name for f in fields(cls)]
        for name, value in nested.items():
            if name not in top:
                raise ConfigError(f"unknown configuration section or key {name!r}{_suggest(name, top)} "
                                  f"(sections: {', '.join(cls.SECTIONS)}; top-level key: seed)")
            section = cls.SECTIONS.get(name)
            if section is None:
                continue
            known = [k.name for k in section.keys()]
            if not isinstance(value, dict):
                raise ConfigError(f"{name} is a section; give it as a table ([{name}] with keys "
                                  f"{', '.join(known)}), got {value!r}")
            unknown = sorted(set(value) - set(known))
            if unknown:
                raise ConfigError(f"unknown key {name}.{unknown[0]}{_suggest(unknown[0], known)} "
                                  f"(section {name} has {', '.join(known)})")

    @classmethod
    def from_dict(cls, nested: dict) -> "RunConfig":
        """From a nested dict as in a TOML file (``seed`` and sections of settings); absent settings keep
        their defaults."""
        cls.check_names(nested)
        return cls(**{name: cls.SECTIONS[name](**value) if name in cls.SECTIONS else value
                      for name, value in nested.items()})

    def to_dict(self) -> dict:
        """The nested form (every setting), which :meth:`from_dict` reads back."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)} if f.name in self.SECTIONS \
                else value
        return out

    @classmethod
    def from_flat(cls, flat: dict) -> "RunConfig":
        """From a config.json dict; see the module's docstring.  A null value is the default, except for an
        optional setting, where it is the value none (``driver_opamp_gain`` null: an exact virtual ground)."""
        nest(flat)  # refuses unknown keys, null ones included
        return cls.from_dict(nest({k: v for k, v in flat.items() if v is not None or KEYS[k].meta["optional"]}))

    def to_flat(self) -> dict:
        """The config.json dict: every common key (``lrs`` resolved when none were given), and the
        driver keys (``driver_*``) and sparse settings (data subsets) that differ from their defaults."""
        out = {}
        for key in self.keys():
            value = self.get(key)
            if key.flat == "lrs":
                value = self.learning_rates if value is None else value
            if (key.section in DRIVER_ONLY or key.meta["sparse"]) and value == key.default:
                continue
            out[key.flat] = list(value) if isinstance(value, tuple) else value
        return out


KEYS = {k.flat: k for k in RunConfig.keys()}


def nest(flat: dict) -> dict:
    """A flat dict (config.json keys) as nested sections; unknown keys are refused by name."""
    if not isinstance(flat, dict):
        raise ConfigError(f"a flat run configuration must be a dict of config.json keys, got {flat!r}")
    unknown = sorted(set(flat) - set(KEYS))
    if unknown:
        hints = "".join(_suggest(k, KEYS) for k in unknown[:1])
        raise ConfigError(f"unknown configuration keys {unknown}{hints}")
    out = {}
    for name, value in flat.items():
        key = KEYS[name]
        if key.section:
            out.setdefault(key.section, {})[key.name] = value
        else:
            out[key.name] = value
    return out


def flatten(nested: dict) -> dict:
    """The config.json keys of the settings a nested dict holds (e.g. only a run's overrides)."""
    by_path = {k.path: k for k in KEYS.values()}
    out = {}
    for name, value in nested.items():
        items = value.items() if name in RunConfig.SECTIONS else [(None, value)]
        for sub, v in items:
            path = f"{name}.{sub}" if sub else name
            if path not in by_path:
                raise ConfigError(f"unknown configuration key {path}{_suggest(path, by_path)}")
            out[by_path[path].flat] = v
    return out


def from_flat(flat: dict) -> RunConfig:
    """:meth:`RunConfig.from_flat`."""
    return RunConfig.from_flat(flat)
