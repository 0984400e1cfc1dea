"""From a run configuration (a flat dict, as saved in ``config.json``) to
dataset, network, driver and trainer.  Shared by the CLI, benchmarks and
examples; :func:`load_run` does the same for a saved run.  The configuration tree
(:mod:`analogprop.config`) holds the defaults and checks every setting; drivers
register a factory in :data:`DRIVERS`, which hands them plain values, not the tree.
"""
from __future__ import annotations

import numpy as np

from ..config import RunConfig, from_flat
from ..data.augment import check_fits
from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..model.conv_network import arch_sizes, create_network
from ..model.relax import EulerSolver, FastSolver
from .directory import RunDir, load_checkpoint, load_device_state
from ..training.trainer import TrainConfig

#: the flat configuration of ``analogprop train`` without options
DEFAULTS = RunConfig().to_flat()


def _dtype(cfg: dict):
    return np.dtype(cfg["dtype"]).type


def make_solver(cfg: dict):
    """The ideal driver's fixed-point solver of a completed configuration."""
    dtype = _dtype(cfg)
    if cfg["solver"] == "euler":
        return EulerSolver(step=cfg["euler_step"], max_steps=cfg["max_steps"], tol=cfg["tol"], dtype=dtype)
    return FastSolver(tol=cfg["tol"], max_sweeps=cfg["max_steps"], dtype=dtype, over_relax=cfg["over_relax"])


def make_nudge_solver(cfg: dict):
    """None (relax the nudged phase to its fixed point), or ``nudge_steps`` Euler steps (Eq. 59) from
    the free fixed point: Table 1's "iterations (second phase)", the truncated weakly clamped phase of
    the EP literature (Scellier & Bengio 2017: 4-8 steps of 0.5)."""
    n = cfg["nudge_steps"]
    if n == 0:
        return None
    return EulerSolver(step=cfg["euler_step"], max_steps=int(n), tol=cfg["tol"], stop_early=False, dtype=_dtype(cfg))


def _ideal(run: RunConfig, network):
    from ..drivers.ideal import IdealDriver

    cfg = run.to_flat()
    return IdealDriver(network, make_solver(cfg), make_nudge_solver(cfg))


def _visa(run: RunConfig, network):
    from ..drivers.visa import make_visa_driver

    return make_visa_driver(network, run.visa.profile, run.visa.visa_backend)


def circuit_settings(run: RunConfig) -> dict:
    """Keyword arguments of :func:`analogprop.drivers.circuit.make_circuit_driver` from the circuit section."""
    from ..circuit.mismatch import CrossbarDesign, Mismatch
    from ..circuit.nonideal import Nonidealities

    c = run.circuit
    return {"level": c.level, "mismatch": Mismatch(**c.mismatch_kwargs()), "die": c.die,
            "nonideal": Nonidealities(**c.nonideal_kwargs()),
            "design": CrossbarDesign(**c.design_kwargs()), "clamp": c.clamp, "newton_iters": c.newton_iters,
            "tol": run.solver.tol, "max_sweeps": run.solver.max_steps}


def _circuit(run: RunConfig, network):
    from ..drivers.circuit import make_circuit_driver

    if run.circuit.circuit_spec is not None:
        return _user_circuit(run, network)
    lone = [k for k in run.circuit.keys() if k.name in run.circuit.USER and getattr(run.circuit, k.name) != k.default]
    if lone:
        raise ConfigError(f"{lone[0]} applies to a network of your own subcircuits: give --circuit-spec FILE")
    return make_circuit_driver(network, **circuit_settings(run))


def _user_circuit(run: RunConfig, network):
    """``--driver circuit --circuit-spec FILE``: the user's own subcircuits (:mod:`analogprop.drivers.user_circuit`)."""
    from ..drivers.user_circuit import make_user_circuit_driver

    c, own = run.circuit, run.circuit.USER + ("die",)
    changed = [k for k in c.keys() if k.name not in own and getattr(c, k.name) != k.default]
    if changed:
        raise ConfigError(f"{changed[0]} describes the built-in circuit; with --circuit-spec the devices, their "
                          "mismatch and levels come from the specification")
    return make_user_circuit_driver(network, c.circuit_spec, die=c.die, seed=run.seed, temperature=c.temperature,
                                    spot_checks=c.spot_checks, tol=run.solver.tol, max_iters=run.solver.max_steps)


def _ngspice(run: RunConfig, network):
    from ..drivers.ngspice import make_ngspice_driver

    if run.circuit.circuit_spec is not None:
        raise ConfigError("--circuit-spec is trained with --driver circuit (the ngspice-characterized tables; "
                          "--spot-checks N compares samples with ngspice)")
    return make_ngspice_driver(network, netlist_dir=run.ngspice.netlist_dir, **circuit_settings(run))


#: name -> factory(run configuration, network) -> Driver
DRIVERS = {"ideal": _ideal, "visa": _visa, "circuit": _circuit, "ngspice": _ngspice}


def make_driver(cfg: dict, network):
    """The driver a (flat) configuration names, realising ``network``."""
    run = from_flat(cfg)
    return DRIVERS[run.driver.name](run, network)


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
    """The flat configuration with defaults filled and every setting checked (see
    :class:`analogprop.config.RunConfig`), plus the resolution of beta; a new dict.  ConfigError names the key."""
    out = from_flat(cfg).to_flat()
    check_resolution(out)
    return out


def train_config(cfg: dict) -> TrainConfig:
    """The trainer's settings of a flat configuration, learning rates resolved for its architecture."""
    run = from_flat(cfg)
    return TrainConfig(**run.training_kwargs()).validate(run.n_pairs)


def check_fit(sizes, data: Dataset) -> None:
    """The dataset must match the network's input and output sizes."""
    if data.n_inputs != sizes[0]:
        raise ConfigError(f"dataset {data.name} has {data.n_inputs} inputs but the architecture's input layer has {sizes[0]}")
    if data.n_classes != sizes[-1]:
        raise ConfigError(f"dataset {data.name} has {data.n_classes} classes but the output layer has {sizes[-1]} units")


def _network(cfg: dict):
    """The (dense or convolutional) network a completed configuration describes, freshly initialised."""
    return create_network(cfg["arch"], seed=cfg["seed"], bias=cfg["bias"], tied=cfg["tied"],
                          linear_output=cfg["linear_output"], feedback_init=cfg["feedback_init"],
                          readout=cfg.get("readout", "dynamic"))


def build(cfg: dict, params: dict | None = None):
    """Dataset (its training and test subsets, if the configuration takes them), driver and train config
    of a configuration.  ``params``, when given (a checkpoint), replace the initial parameters.
    """
    cfg = complete(cfg)
    tc = train_config(cfg)
    sizes = arch_sizes(cfg["arch"])
    data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg["download"])
    check_fit(sizes, data)
    check_fits(tc.shift, data.image_shape)
    data = data.subset(cfg.get("train_subset"), cfg.get("test_subset"))
    driver = make_driver(cfg, _network(cfg))
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
