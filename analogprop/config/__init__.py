"""The run configuration: one typed tree, the single source of defaults, validation, config.json and TOML.

* :mod:`.checks`: declarative settings (help, CLI flag, unit, validator) and the validators;
* :mod:`.sections`: the sections (data, model, driver, solver, training, circuit, ngspice, visa);
* :mod:`.tree`: :class:`RunConfig`, the rules between settings, the flat config.json form;
* :mod:`analogprop.rates`: learning rates per layer pair for any depth (shared with the trainer);
* :mod:`.files`: TOML files and the layering defaults < file < command line;
* :mod:`analogprop.cli.config_options`: the argparse options generated from the tree (CLI layer).
"""
from .files import check_layer, combine, load_toml, merge
from ..rates import default_lrs, resolve_lrs
from .sections import (CircuitConfig, DataConfig, DriverConfig, ModelConfig, NgspiceConfig, SolverConfig,
                       TrainingConfig, VisaConfig)
from .tree import KEYS, RunConfig, flatten, from_flat, nest

__all__ = ["RunConfig", "DataConfig", "ModelConfig", "DriverConfig", "SolverConfig", "TrainingConfig",
           "CircuitConfig", "NgspiceConfig", "VisaConfig", "KEYS", "from_flat", "nest", "flatten", "load_toml",
           "merge", "combine", "check_layer", "default_lrs", "resolve_lrs"]
