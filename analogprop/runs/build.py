"""From a run configuration (a flat dict, as saved in ``config.json``) to
dataset, network, driver and trainer.  Shared by the CLI, benchmarks and
examples; :func:`load_run` does the same for a saved run.  Drivers register a factory in :data:`DRIVERS`.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import fields

import numpy as np

from ..data.augment import check_fits
from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..model.conv_network import arch_sizes, create_network, normalize_arch
from ..model.relax import EulerSolver, FastSolver
from .directory import RunDir, load_checkpoint, load_device_state
from ..training.trainer import TrainConfig

DEFAULTS = {
    "dataset": "digits", "data_dir": None, "download": False,
    "arch": "64-32-10", "seed": 0, "bias": True, "tied": False, "feedback_init": "random",
    "linear_output": False,
    "driver": "ideal", "solver": "fast", "tol": 1e-5, "max_steps": 500, "euler_step": 0.5,
    "nudge_steps": 0, "dtype": "float64",
    "beta": 0.5, "lrs": [0.5, 0.2], "batch_size": 20, "epochs": 10,
    "symmetric": False, "random_sign": False, "checkpoint_every": 0, "keep_every": 0,
    "lr_decay": 1.0, "lr_decay_start": 1, "weight_decay": 0.0, "shift": 0,
    "centered": False, "rule": "two-phase", "probe": 0,
    "optimizer": "sgd", "adam_betas": [0.9, 0.999], "adam_eps": 1e-8, "feedback_lr_factor": 1.0,
    "alignment_drift": False,
}


def _dtype(cfg: dict):
    return np.dtype(cfg.get("dtype", "float64")).type


def make_solver(cfg: dict):
    dtype = _dtype(cfg)
    if cfg["solver"] == "fast":
        return FastSolver(tol=cfg["tol"], max_sweeps=cfg["max_steps"], dtype=dtype)
    if cfg["solver"] == "euler":
        return EulerSolver(step=cfg["euler_step"], max_steps=cfg["max_steps"], tol=cfg["tol"], dtype=dtype)
    raise ConfigError(f"unknown solver {cfg['solver']!r} (choose 'fast' or 'euler')")


def make_nudge_solver(cfg: dict):
    """None (relax the nudged phase to its fixed point), or ``nudge_steps`` Euler steps (Eq. 59) from
    the free fixed point: Table 1's "iterations (second phase)", the truncated weakly clamped phase of
    the EP literature (Scellier & Bengio 2017: 4-8 steps of 0.5)."""
    n = cfg["nudge_steps"]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"nudge_steps must be a whole number >= 0 (0: relax the nudged phase to its "
                          f"fixed point), got {n!r}")
    if n == 0:
        return None
    if cfg["driver"] != "ideal":
        raise ConfigError(f"nudge_steps truncates the ideal model's nudged phase; the {cfg['driver']} driver "
                          "measures fixed points (use nudge_steps 0)")
    return EulerSolver(step=cfg["euler_step"], max_steps=int(n), tol=cfg["tol"], stop_early=False, dtype=_dtype(cfg))


def _ideal(cfg, network):
    from ..drivers.ideal import IdealDriver

    return IdealDriver(network, make_solver(cfg), make_nudge_solver(cfg))


def _visa(cfg, network):
    from ..drivers.visa import make_visa_driver

    return make_visa_driver(cfg, network)


def _circuit(cfg, network):
    from ..drivers.circuit import from_config

    return from_config(cfg, network)


def _ngspice(cfg, network):
    from ..drivers.ngspice import from_config

    return from_config(cfg, network)


#: name -> factory(config, network) -> Driver
DRIVERS = {"ideal": _ideal, "visa": _visa, "circuit": _circuit, "ngspice": _ngspice}


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _typed(key: str, value):
    """``value`` of setting ``key`` checked against the type of its default (whole numbers given as
    3.0 become 3, numbers become floats); ConfigError names the key otherwise."""
    default = DEFAULTS[key]
    number = _is_number(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        kind = "true or false"
    elif isinstance(default, int):
        if number and float(value).is_integer():
            return int(value)
        kind = "a whole number"
    elif isinstance(default, float):
        if number and not (isinstance(value, numbers.Integral) and abs(value) > np.finfo(float).max):
            return float(value)  # NaN and infinity: refused with the setting's range below
        kind = "a number"
    elif isinstance(default, list):
        if isinstance(value, (list, tuple)) and all(map(_is_number, value)):
            return [float(v) for v in value]
        kind = "a list of numbers, e.g. [0.5, 0.2]"
    elif key == "arch":
        if isinstance(value, str) or (isinstance(value, (list, tuple)) and value
                                      and all(_is_number(v) and float(v).is_integer() for v in value)):
            return value
        kind = "text such as 64-32-10"
    else:  # text settings; data_dir may also be a path
        if isinstance(value, str) or (key == "data_dir" and isinstance(value, os.PathLike)):
            return os.fspath(value)
        kind = "text"
    raise ConfigError(f"{key} must be {kind}, got {value!r}")


def check_resolution(cfg: dict) -> None:
    """beta must exceed the resolution of the fixed points.  The nudged phase moves the states
    by about beta (the nudging term beta (y - s) of Eq. 12, with states and targets in [0, 1]),
    and each fixed point is only known to within the solver tolerance ``tol``, and never better
    than the machine epsilon of the solver's dtype; below that, (h_beta - h0) / beta (Eq. 56)
    is relaxation error, not a gradient estimate."""
    floor = max(cfg["tol"], float(np.finfo(cfg["dtype"]).eps))
    if cfg["beta"] <= floor:
        raise ConfigError(f"beta {cfg['beta']:g} is below the resolution of the fixed points, max(tol, eps of "
                          f"{cfg['dtype']}) = {floor:g}: the nudged phase moves the states by about beta, so "
                          f"(h_beta - h0)/beta would be relaxation error; use beta > {floor:g} (or a lower tol)")


def complete(cfg: dict) -> dict:
    """Fill defaults and check every setting (type, range, the training settings of
    :meth:`TrainConfig.validate`); returns a new dict.  ConfigError names the key."""
    unknown = sorted(set(cfg) - set(DEFAULTS) - {k for k in cfg if k.startswith("driver_")})
    if unknown:
        raise ConfigError(f"unknown configuration keys {unknown}")
    out = dict(DEFAULTS)
    # TrainConfig.validate (below) checks its own fields, the drivers their driver_* keys
    out.update({k: v if k.startswith("driver_") or k in TRAIN_KEYS else _typed(k, v)
                for k, v in cfg.items() if v is not None})
    out["arch"] = normalize_arch(out["arch"])
    if out["driver"] not in DRIVERS:
        raise ConfigError(f"unknown driver {out['driver']!r} (available: {', '.join(sorted(DRIVERS))})")
    if out["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"dtype must be float32 or float64, got {out['dtype']!r}")
    if not (np.isfinite(out["tol"]) and out["tol"] > 0):
        raise ConfigError(f"tol must be a finite number > 0 (the residual at which a relaxation stops), "
                          f"got {out['tol']}")
    if out["max_steps"] < 1:
        raise ConfigError(f"max_steps must be a whole number >= 1, got {out['max_steps']}")
    TrainConfig(**{k: out[k] for k in TRAIN_KEYS}).validate()  # learning rates per layer pair: train_config
    check_resolution(out)
    return out


TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


def train_config(cfg: dict) -> TrainConfig:
    tc = TrainConfig(**{k: cfg[k] for k in TRAIN_KEYS})
    return tc.validate(len(arch_sizes(cfg["arch"])) - 1)


def check_fit(sizes, data: Dataset) -> None:
    """The dataset must match the network's input and output sizes."""
    if data.n_inputs != sizes[0]:
        raise ConfigError(f"dataset {data.name} has {data.n_inputs} inputs but the architecture's input layer has {sizes[0]}")
    if data.n_classes != sizes[-1]:
        raise ConfigError(f"dataset {data.name} has {data.n_classes} classes but the output layer has {sizes[-1]} units")


def _network(cfg: dict):
    """The (dense or convolutional) network a completed configuration describes, freshly initialised."""
    return create_network(cfg["arch"], seed=cfg["seed"], bias=cfg["bias"], tied=cfg["tied"],
                          linear_output=cfg["linear_output"], feedback_init=cfg["feedback_init"])


def build(cfg: dict, params: dict | None = None):
    """Dataset, driver and train config of a completed configuration.

    ``params``, when given (a checkpoint), replace the initial parameters.
    """
    cfg = complete(cfg)
    tc = train_config(cfg)
    sizes = arch_sizes(cfg["arch"])
    make_solver(cfg)  # validate solver settings before loading anything
    make_nudge_solver(cfg)
    data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg["download"])
    check_fit(sizes, data)
    check_fits(tc.shift, data.image_shape)
    if cfg["linear_output"] and cfg["driver"] != "ideal":
        raise ConfigError(f"linear_output needs the ideal driver: the {cfg['driver']} driver's output "
                          "nodes are clamped to [0, 1]")
    driver = DRIVERS[cfg["driver"]](cfg, _network(cfg))
    if params is not None:
        driver.set_parameters(params)
    return data, driver, tc


def load_run(path, **overrides):
    """Dataset, driver, train config and checkpoint metadata of the run directory ``path``: the driver
    holds the checkpoint's parameters and device state.  ``overrides`` that are not None replace keys of
    the saved configuration (e.g. ``data_dir``)."""
    run = RunDir(path)
    cfg = run.read_config()
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    params, meta = load_checkpoint(run.checkpoint_path)
    data, driver, tc = build(cfg, params)
    try:
        driver.restore_device_state(load_device_state(run.checkpoint_path))
    except BaseException:
        driver.close()
        raise
    return data, driver, tc, meta


def load_network(path):
    """The network of the run directory ``path`` with its checkpoint's parameters (float64, as the ideal
    driver holds them), without loading the run's dataset or building its driver."""
    run = RunDir(path)
    net = _network(complete(run.read_config()))
    net.params = {k: np.array(v, dtype=float) for k, v in load_checkpoint(run.checkpoint_path)[0].items()}
    return net.validate()
