"""From a run configuration (a flat dict, as saved in ``config.json``) to
dataset, network, driver and trainer.  Shared by the CLI, benchmarks and
examples; :func:`load_run` does the same for a saved run.  Drivers register a factory in :data:`DRIVERS`.
"""
from __future__ import annotations

import numpy as np

from .augment import check_fits
from .data import Dataset, load_dataset
from .errors import ConfigError
from .conv_network import arch_sizes, create_network, normalize_arch
from .relax import EulerSolver, FastSolver
from .runs import RunDir, load_checkpoint, load_device_state
from .trainer import TrainConfig

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
    from .drivers.ideal import IdealDriver

    return IdealDriver(network, make_solver(cfg), make_nudge_solver(cfg))


def _visa(cfg, network):
    from .drivers.visa import make_visa_driver

    return make_visa_driver(cfg, network)


def _circuit(cfg, network):
    from .drivers.circuit import from_config

    return from_config(cfg, network)


def _ngspice(cfg, network):
    from .drivers.ngspice import from_config

    return from_config(cfg, network)


#: name -> factory(config, network) -> Driver
DRIVERS = {"ideal": _ideal, "visa": _visa, "circuit": _circuit, "ngspice": _ngspice}


def complete(cfg: dict) -> dict:
    """Fill defaults and check the keys; returns a new dict."""
    unknown = sorted(set(cfg) - set(DEFAULTS) - {k for k in cfg if k.startswith("driver_")})
    if unknown:
        raise ConfigError(f"unknown configuration keys {unknown}")
    out = dict(DEFAULTS)
    out.update({k: v for k, v in cfg.items() if v is not None})
    out["arch"] = normalize_arch(out["arch"])
    if out["driver"] not in DRIVERS:
        raise ConfigError(f"unknown driver {out['driver']!r} (available: {', '.join(sorted(DRIVERS))})")
    return out


def train_config(cfg: dict) -> TrainConfig:
    keys = ("beta", "lrs", "batch_size", "epochs", "seed", "symmetric", "random_sign", "checkpoint_every",
            "keep_every", "lr_decay", "lr_decay_start", "weight_decay", "shift", "centered", "optimizer",
            "adam_betas", "adam_eps", "feedback_lr_factor", "alignment_drift")
    tc = TrainConfig(**{k: cfg[k] for k in keys})
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
