"""Configuration files and layers: ``analogprop train --config FILE.toml`` and the order of precedence.

A TOML file holds ``seed`` and sections as in :class:`~.tree.RunConfig`::

    seed = 1

    [data]
    dataset = "mnist"

    [model]
    arch = "784-512-512-10"

    [training]
    lrs = [0.4, 0.1, 0.01]
    beta = 1.0

    [driver]
    name = "circuit"

    [circuit]
    g_dtod = 0.05

:func:`merge` stacks layers over the defaults: defaults < TOML file < CLI overrides.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from ..errors import ConfigError
from .tree import RunConfig


def check_layer(nested: dict) -> dict:
    """A layer of settings (a nested dict, possibly partial) with every name known and every value checked
    and normalised; rules between settings wait for :func:`merge`."""
    RunConfig.check_names(nested)
    keys = {k.path: k for k in RunConfig.keys()}
    return {name: {k: keys[f"{name}.{k}"].validate(v) for k, v in value.items()} if name in RunConfig.SECTIONS
            else keys[name].validate(value) for name, value in nested.items()}


def load_toml(path) -> dict:
    """The settings of a TOML configuration file, checked (see :func:`check_layer`); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file ({e.strerror or e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML ({e})") from None
    try:
        return check_layer(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def combine(*layers) -> dict:
    """The settings of the layers (nested dicts as :func:`load_toml` and
    :func:`analogprop.cli.config_options.overrides_from_args` give, or RunConfig objects, every setting of
    one counting), each overriding the ones before setting by setting; no defaults added."""
    combined = {}
    for layer in layers:
        nested = layer.to_dict() if isinstance(layer, RunConfig) else check_layer(layer)
        for name, value in nested.items():
            if isinstance(value, dict):
                combined.setdefault(name, {}).update(value)
            else:
                combined[name] = value
    return combined


def merge(*layers) -> RunConfig:
    """The defaults overridden by each layer in turn (see :func:`combine`).

    Driver settings the chosen driver would ignore (e.g. ``--g-dtod`` with the ideal driver) are refused.
    """
    cfg = RunConfig.from_dict(combine(*layers))
    unused = cfg.unused_settings()
    if unused:
        raise ConfigError(f"{', '.join(map(str, unused))}: not read by the {cfg.driver.name} driver "
                          f"(set driver.name, --driver, to the driver these settings are for)")
    return cfg
