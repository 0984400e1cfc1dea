"""Driver of a compiled circuit whose operating points ngspice finds.

The circuit driver (:class:`~analogprop.drivers.circuit.CircuitDriver`:
programming, read noise, the local rule of every device) with its
operating-point solver replaced by :class:`~analogprop.spice.solver.SpiceSolver`:
one netlist load and one DC sweep per phase and minibatch, the nudged phase
continuing from each sample's free point.  Parameter updates reach ngspice
through the next minibatch's netlist, which has to be rewritten and reloaded
anyway for the new inputs and targets (they are tables, which ``alter``
cannot change); altering the weights as well would only add its own cost
(``benchmarks/spice.py`` measures both).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..spice.solver import SpiceSolver
from .circuit import CircuitDriver
from .circuit import from_config as circuit_from_config

#: configuration keys of this driver on top of the circuit driver's
OWN_KEYS = ("driver_netlist_dir",)


class NgspiceDriver(CircuitDriver):
    """A :class:`CircuitDriver` solved by ngspice; the minibatch netlist is kept in ``solver.netlist_path``."""

    def __init__(self, circuit, solver: SpiceSolver | None = None):
        super().__init__(circuit, solver or SpiceSolver())

    def close(self) -> None:
        from ..spice.engine import engine

        engine().release(circuits=True)


def from_config(cfg: dict, network) -> NgspiceDriver:
    """The ``ngspice`` driver of a run configuration: the circuit driver's keys plus ``driver_netlist_dir``."""
    base = circuit_from_config({k: v for k, v in cfg.items() if k not in OWN_KEYS}, network)
    folder = cfg.get("driver_netlist_dir")
    if folder is not None and not isinstance(folder, (str, Path)):
        raise ConfigError(f"driver_netlist_dir must be a directory path, got {folder!r}")
    return NgspiceDriver(base.circuit, SpiceSolver(tol=base.solver.tol, workdir=folder))


def add_ngspice_options(p) -> None:
    """Options of ``train --driver ngspice`` (besides the circuit options)."""
    g = p.add_argument_group("ngspice (--driver ngspice; also takes the circuit options)")
    g.add_argument("--netlist-dir", dest="driver_netlist_dir",
                   help="directory for the minibatch netlist ngspice runs (default: a temporary directory)")
