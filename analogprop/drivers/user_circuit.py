"""Driver of a network built from a user's own neuron and synapse subcircuits (a circuit specification).

The subcircuits are characterized once by ngspice
(:mod:`analogprop.spice.characterize`, cached on disk) and the network is
relaxed by the fast tabulated solver
(:class:`~analogprop.circuit.tabulated.TabulatedSolver`).  The parameters are
the synapses' programming values (a gate voltage, a width, ...), one array per
synapse array: ``fwd{k}_p``/``fwd{k}_n`` (``bwd{k}_*`` for feedback; no
suffix when the synapse is not differential).  The update of each device is
the local rule of Appendix A (Eq. 26): ``dmu_i/dp`` is the slope of the
device's own table in its programming value at the free fixed point, times
the change of its postsynaptic node between the phases.  States are reported
in network units ``(V - v_low) / (v_high - v_low)``.

``spot_checks`` > 0 solves that many samples of every free phase in ngspice
as well and keeps the largest node-voltage difference in ``stats``.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..circuit.tabulated import TabulatedSolver, UserNetwork, local_rule
from ..circuit.user_spec import CircuitSpec, load_spec
from ..spice.characterize import library_text
from .base import Driver, Phase

class UserCircuitDriver(Driver):
    """Programs and relaxes a :class:`UserNetwork` through its characterization tables."""

    def __init__(self, net: UserNetwork, neurons, synapses, tol: float = 1e-9, max_iters: int = 100,
                 spot_checks: int = 0):
        self.net, self.sizes = net, net.sizes
        self.solver = TabulatedSolver(net, neurons, synapses, tol=tol, max_iters=max_iters)
        self.spot_checks = int(spot_checks)
        self.stats = {"spot_checks": 0, "spot_max_dv": 0.0}

    @classmethod
    def from_spec(cls, spec: CircuitSpec | str, sizes, die: int = 0, seed: int = 0, temperature: float | None = None,
                  **kw) -> "UserCircuitDriver":
        """Draw die ``die`` of the specification's instances, characterize them (cached) and build the driver."""
        from ..spice.characterize import characterize_neurons, characterize_synapses

        spec = load_spec(spec) if not isinstance(spec, CircuitSpec) else spec
        if temperature is not None:
            spec = spec.at_temperature(temperature)
        net = UserNetwork.build(spec, sizes, die, seed=seed)
        return cls(net, characterize_neurons(spec, net.neuron_params), characterize_synapses(spec, net.synapse_params),
                   **kw)

    # -- parameters -----------------------------------------------------------
    def get_parameters(self):
        return {a.name: a.program.copy() for a in self.net.arrays}

    def set_parameters(self, params):
        self.net.program(params)

    def parameter_groups(self):
        return {a.name: min(a.src, a.dst) for a in self.net.arrays}

    def deploy_from_network(self, weights: dict) -> None:
        """Program network weights (see :meth:`UserNetwork.programs_from_weights`)."""
        self.net.program(self.net.programs_from_weights(weights))

    def effective_weights(self):
        """d(current into h_i)/d(rho_j) / g_unit at the middle of the range, pairs combined: the weights the die
        realises around mid-rail."""
        spec, mid = self.net.spec, (self.net.spec.v_low + self.net.spec.v_high) / 2
        out = {}
        for a in self.net.arrays:
            slope = self.solver.synapses(a.instance, mid, mid, a.program)[1] / spec.g_unit
            key = a.name.rsplit("_", 1)[0] if spec.synapse.differential else a.name
            out[key] = out.get(key, 0.0) + (-slope if a.inverted else slope)
        return out

    def alignment_pairs(self):
        w = self.effective_weights()
        return [(w[f"fwd{k}"].copy(), w[f"bwd{k}"].copy()) for k in range(1, len(self.sizes) - 1) if f"bwd{k}" in w]

    def alignment(self):
        return [float(np.sum(f * b.T) / max(np.linalg.norm(f) * np.linalg.norm(b), 1e-300))
                for f, b in self.alignment_pairs()]

    # -- phases ---------------------------------------------------------------
    def _phase(self, relax) -> Phase:
        spec = self.net.spec
        states = [(v - spec.v_low) / spec.span for v in relax.states]
        return Phase(states, relax.residual, relax.steps, relax.converged, {"V": relax.states})

    def relax_free(self, x):
        x = np.asarray(x, float)
        relax = self.solver.solve(x)
        if self.spot_checks:
            n = min(self.spot_checks, x.shape[0])
            self.spot_check(x[:n], [v[:n] for v in relax.states])
        return self._phase(relax)

    def relax_nudged(self, x, y, beta, start):
        return self._phase(self.solver.solve(np.asarray(x, float), np.asarray(y, float), beta, start=start.probes["V"]))

    def spot_check(self, x, V=None) -> float:
        """Largest node-voltage difference between the tables' free fixed points (``V``, or solved now) of
        ``x`` and ngspice's on the same netlist; kept in ``stats``."""
        from ..spice.user_netlist import solve_in_ngspice

        x = np.atleast_2d(np.asarray(x, float))
        V = self.solver.solve(x).states if V is None else V
        dv = max(float(np.abs(a[:len(x)] - b).max()) for a, b in zip(V, solve_in_ngspice(self.net, x)))
        self.stats["spot_checks"] += len(x)
        self.stats["spot_max_dv"] = max(self.stats["spot_max_dv"], dv)
        return dv

    def local_update(self, x, free, nudged):
        """Per synapse array: sum over the batch of (dI/dp at the free point / g_unit span) x (du at its
        postsynaptic node), the devices' own table slopes (Eq. 26 without 1/beta)."""
        return local_rule(self.solver, np.asarray(x, float), free.probes["V"], nudged.probes["V"])


def make_user_circuit_driver(network, spec_path, die: int = 0, seed: int = 0, temperature: float | None = None,
                             spot_checks: int = 0, tol: float = 1e-5, max_iters: int = 100) -> UserCircuitDriver:
    """The driver of the specification ``spec_path`` (a file, or a :class:`CircuitSpec`) on die ``die``, programmed
    from ``network``'s weights (:meth:`UserCircuitDriver.deploy_from_network`).  ``tol`` is in network units;
    Newton's residual is in volts and cheap to tighten, so the solver gets a hundredth of it."""
    spec = spec_path if isinstance(spec_path, CircuitSpec) else load_spec(spec_path)
    drv = UserCircuitDriver.from_spec(spec, network.sizes, die=die, seed=seed, temperature=temperature,
                                      tol=0.01 * tol * spec.span, max_iters=max_iters, spot_checks=spot_checks)
    drv.deploy_from_network(network.params)
    return drv


def spec_digest(path) -> str:
    """SHA-256 (16 hex digits) of a circuit specification file and its roles' library text (``.lib`` sections
    expanded, as characterization reads it): what a result on the specification's circuit depends on."""
    spec = load_spec(path)
    h = hashlib.sha256(spec.path.read_bytes())
    for role in (spec.neuron, spec.synapse):
        h.update(library_text(spec, role).encode())
    return h.hexdigest()[:16]
