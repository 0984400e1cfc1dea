"""The ideal driver: the paper's model (Eq. 6-15) solved numerically.

With the network's readout outside the dynamics (``network.readout``, after the
VFCNN of Laborieux et al. 2021) the free phase relaxes the hidden layers only,
the nudged phase pushes the top hidden layer by ``beta W^T e`` (``e = -dL/dz``
of the readout's loss), and the readout weights get their local gradient
``e rho(h_{L-1})^T`` at the free state, weighted by beta like every other
update so the trainer's 1/beta (1/2beta) returns it exactly.
"""
from __future__ import annotations

import numpy as np

from ..model.gradients import presynaptic_rates, readout_gradient_error
from ..model.network import Network, pair_of
from ..model.relax import FastSolver
from .base import Driver, Phase


def _phase(r) -> Phase:
    return Phase(r.states, r.residual, r.steps, r.converged)


class IdealDriver(Driver):
    """Relaxes the ideal network with a solver from :mod:`analogprop.model.relax`; ``nudge_solver``, if
    given, runs the nudged phase instead (e.g. a fixed number of Euler steps from the free fixed point)."""

    def __init__(self, network: Network, solver=None, nudge_solver=None):
        self.network = network.validate()
        self.sizes = network.sizes
        self.readout = network.readout
        self.solver = solver or FastSolver()
        self.nudge_solver = nudge_solver or self.solver

    def get_parameters(self):
        return {k: v.copy() for k, v in self.network.params.items()}

    def set_parameters(self, params):
        self.network.params = {k: np.array(v, dtype=float) for k, v in params.items()}
        self.network.validate()

    def update_parameters(self, delta, decay=None):
        """In place: the decay factors, then ``delta`` (no copy of the parameters per minibatch)."""
        for k, f in (decay or {}).items():
            self.network.params[k] *= f
        self.network.apply_update(delta)

    def parameter_groups(self):
        return {name: pair_of(name) for name in self.network.params}

    def alignment(self):
        return self.network.alignment()

    def alignment_pairs(self):
        return [(f.copy(), b.copy()) for f, b in self.network.alignment_pairs()]

    def relax_free(self, x):
        return _phase(self.solver.solve(self.network, x))

    def relax_nudged(self, x, y, beta, start):
        phase = _phase(self.nudge_solver.solve(self.network, x, y, beta, start=start.states))
        if self.readout != "dynamic":  # the readout's update factor, beta e at the free state
            phase.probes["readout"] = beta * readout_gradient_error(self.network, start.states, y)
        return phase

    def relax_symmetric(self, x, y, beta, start):
        """Both nudged phases as one batch of ``2 n`` samples, ``+beta`` then ``-beta`` (the solvers take a
        beta per sample), so the slow samples of the two phases share their last sweeps."""
        n = len(x)
        two = [np.concatenate([s, s]) for s in start.states]
        r = self.nudge_solver.solve(self.network, np.concatenate([x, x]), np.concatenate([y, y]),
                                    np.repeat([beta, -beta], n), start=two)
        error = readout_gradient_error(self.network, start.states, y) if self.readout != "dynamic" else None
        phases = []
        for half, b in ((slice(0, n), beta), (slice(n, 2 * n), -beta)):
            phase = Phase([s[half] for s in r.states], r.residual[half], r.steps[half], r.converged[half])
            if error is not None:
                phase.probes["readout"] = b * error
            phases.append(phase)
        return tuple(phases)

    def local_update(self, x, free, nudged, centered=False):
        r = presynaptic_rates(x, free.states, centered)
        dh = [b - a for a, b in zip(free.states, nudged.states)]
        if self.readout != "dynamic":
            dh[-1] = nudged.probes["readout"]
        return self.network.hebbian(r, dh)
