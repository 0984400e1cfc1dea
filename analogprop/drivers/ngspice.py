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

from ..errors import ConfigError
from ..spice.solver import SpiceSolver
from .circuit import CircuitDriver, make_circuit_driver


class NgspiceDriver(CircuitDriver):
    """A :class:`CircuitDriver` solved by ngspice; the minibatch netlist is kept in ``solver.netlist_path``."""

    def __init__(self, circuit, solver: SpiceSolver | None = None):
        super().__init__(circuit, solver or SpiceSolver())

    def close(self) -> None:
        from ..spice.engine import engine

        engine().release(circuits=True)


def make_ngspice_driver(network, *, netlist_dir=None, **circuit) -> NgspiceDriver:
    """The ``ngspice`` driver of a run: the circuit of :func:`~.circuit.make_circuit_driver` (same ``circuit``
    settings) solved by ngspice, its minibatch netlist written in ``netlist_dir`` (None: a temporary directory)."""
    if network.readout != "dynamic":
        raise ConfigError(f"readout {network.readout!r} needs the ideal driver: the ngspice driver's output is a dynamic layer (use readout dynamic)")
    base = make_circuit_driver(network, **circuit)
    return NgspiceDriver(base.circuit, SpiceSolver(tol=base.solver.tol, workdir=netlist_dir))
