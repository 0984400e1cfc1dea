"""Driver of a compiled circuit solved by the fast circuit solver.

The trainer programs the circuit's own elements and gets, for each one, the
local rule of the note ("Level 1", Eq. 26): for a device between a driven
node ``a`` (a buffer or inverter output, a rail) and a neuron node ``b``,
``dmu/dtheta . ds`` is built only from voltages measured at its terminals
in the two phases.

Coordinates (so that learning rates mean the same as for the ideal driver):

* states ``s`` are the neuron pre-activations ``u_k = unit_gain_k * V_h``
  (behavioural: the node voltages themselves), and the field is the node
  current divided by the node's nominal ``g_node / unit_gain`` (= 1 for
  the behavioural level, ``g_w`` for the crossbar), so that the nudge of
  the circuit (a conductance ``beta * nudge`` to ``y * target_scale``) is
  exactly ``beta (y - u)`` (Eq. 14);
* behavioural parameters are the transconductances ``fwd{k}``/``bwd{k}``
  and bias currents ``bias{k}`` (g_unit): ``dmu_i/dG_ij = r_j`` and the
  update is ``r_j(s0) * du_i``, the paper's Eq. 56 with unclipped states;
* crossbar parameters are the conductances ``{fwd,bwd,bias}{k}_{p,n}``
  in units of ``g_w`` (one unit of weight, so ``W = theta_p - theta_n``
  nominally); their update is
  ``(V_a0 - V_b0) * (V_b_beta - V_b0) * unit_gain_k``:
  the voltage across the device in the free phase times the change at its
  neuron terminal, times a constant of the layer.  Both devices of a pair
  move, so the effective weight ``theta_p - theta_n`` moves by
  ``2 r_j du_i``: twice the ideal driver's step for the same learning rate.

Virtual-ground level (``vground``, circuit-mapping level 2): states are
``h = -V_out`` of each column's transimpedance stage and the field is the
column current over the nominal feedback conductance ``g_w``; a device
``G = g_w theta`` from a row (or rail) at ``V_a`` into column i has
``dmu_i/dtheta = V_a - V_col,i``, so its update is
``(V_a0 - V_col,i0) * (h_i,beta - h_i0)``: the row voltage minus the measured
column voltage (not 0 with a finite op-amp gain or an input offset) times
the change at the stage output.  With ``rb = -r`` and ``V_col = 0``,
``dtheta_n = -dtheta_p``; the effective weight moves by ``2 r_j dh_i``.  With wire resistance the voltage
across the device is taken at its crosspoint, computed from its tile's network at the measured row drives
and column voltages (:mod:`analogprop.circuit.wires`).

Reads (every reported voltage) carry ``read_noise_std``; every programming
clips/quantises and adds ``write_noise_std`` (see :mod:`analogprop.circuit`).
"""
from __future__ import annotations

import json
import re

import numpy as np

from ..circuit.description import Circuit, compile_circuit, crossbar_pairs
from ..circuit.mismatch import CrossbarDesign, Mismatch, read_rng
from ..circuit.nonideal import Nonidealities
from ..circuit.solver import CircuitSolver
from ..circuit.vground import VgroundSolver, split
from ..circuit.wires import device_voltages, wired
from ..errors import ConfigError
from ..model.gradients import centre
from .base import Driver, Phase

_PARAM = re.compile(r"^(fwd|bwd|bias)(\d+)(_p|_n)?$")


class CircuitDriver(Driver):
    """Programs, relaxes and measures a :class:`~analogprop.circuit.Circuit`.

    A phase's probes: ``V`` the measured node voltages per dynamic layer,
    ``r`` (and ``rb``, crossbar) the measured buffer (inverter) outputs of
    layers 0..L, ``exact_V`` the node voltages themselves (the circuit
    continues from them into the nudged phase).
    """

    def __init__(self, circuit: Circuit, solver: CircuitSolver | None = None):
        self.circuit = circuit
        self.sizes = circuit.sizes
        self.solver = solver or (VgroundSolver() if circuit.vground else CircuitSolver())
        self._reads = read_rng(circuit.die)
        self._unit = circuit.design.g_w if circuit.crossbar else 1.0  # g_unit per parameter unit

    @classmethod
    def from_network(cls, sizes, weights, level="behavioural", mismatch: Mismatch | None = None, die: int = 0,
                     design: CrossbarDesign | None = None, solver: CircuitSolver | None = None,
                     clamp: bool = True, nonideal: Nonidealities | None = None) -> "CircuitDriver":
        """Deploy network weights (fwd/bwd/bias) on a die: the nominal transfer of :func:`compile_circuit`.

        ``clamp`` (default) adds the node clamps, so that the circuit follows
        the paper's projected dynamics and the local rule sees no change at
        saturated neurons.
        """
        return cls(compile_circuit(sizes, weights, level, mismatch, die, design, clamp=clamp, nonideal=nonideal),
                   solver)

    # -- parameters -----------------------------------------------------------
    def get_parameters(self):
        return {k: self.circuit.nominal[k] / self._unit for k in self.circuit.programmable}

    def set_parameters(self, params):
        self.circuit.program({k: np.asarray(v, float) * self._unit for k, v in params.items()})

    def device_state(self):
        """As-built programmable devices (write noise included), write count, read-noise generator."""
        c = self.circuit
        state = {f"values/{k}": c.values[k].copy() for k in c.programmable}
        state["writes"] = np.array(c.writes)
        state["read_rng"] = np.array(json.dumps(self._reads.bit_generator.state))
        return state

    def restore_device_state(self, state):
        """Restore a :meth:`device_state`; an empty one (a checkpoint written without it) keeps the
        devices as just programmed."""
        if not state:
            return
        try:
            values = {k[7:]: v for k, v in state.items() if k.startswith("values/")}
            self.circuit.restore(values, int(state["writes"]))
            self._reads.bit_generator.state = json.loads(str(state["read_rng"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"the checkpoint's circuit device state is incomplete or malformed ({e})") from None

    def parameter_groups(self):
        out = {}
        for name in self.circuit.programmable:
            kind, k, _ = _PARAM.match(name).groups()
            out[name] = int(k) - 1 if kind == "bias" else int(k)
        return out

    def deploy(self, weights: dict, verify: bool = False) -> None:
        """Transfer network weights (fwd/bwd/bias, e.g. trained on the ideal model) onto this die.

        The nominal mapping (crossbar: conductance pairs, clipped and
        quantised); ``verify`` programs with write-verify, compensating each
        programmable device's own spread (not the buffers', inverters' or
        leaks').
        """
        c = self.circuit
        if c.vground:
            weights = {n: (np.asarray(w, float) / c.design.v_rail if n.startswith("bias") else w)
                       for n, w in weights.items()}
        prog = crossbar_pairs(c.design, weights) if c.crossbar else weights
        self.circuit.program({k: np.asarray(v, float) for k, v in prog.items()}, verify=verify)

    def effective_weights(self):
        """Weights the die realises: d(pre-activation)/d r_j of each neuron, bias at r = 0.

        The fixed point then reads ``r = clip(W r + b)`` with these W, b (pre-activation ``gain (V - offset)``).
        """
        c, v, L = self.circuit, self.circuit.values, self.circuit.n_layers
        if c.vground:
            return self._vground_weights()
        out = {}
        for k in range(1, L + 1):
            g = c.conductance(k)
            scale = (v[f"gain{k}"] / g)[:, None]
            if c.crossbar:
                fw = v[f"fwd{k - 1}_p"] - v[f"fwd{k - 1}_n"] * v[f"inv_gain{k - 1}"]
                const = v[f"fwd{k - 1}_n"] @ v[f"inv_offset{k - 1}"]
                if k < L:
                    out[f"bwd{k}"] = scale * (v[f"bwd{k}_p"] - v[f"bwd{k}_n"] * v[f"inv_gain{k + 1}"])
                    const = const + v[f"bwd{k}_n"] @ v[f"inv_offset{k + 1}"]
                if c.has_bias:
                    const = const + c.design.v_rail * (v[f"bias{k}_p"] - v[f"bias{k}_n"])
            else:
                fw = v[f"fwd{k - 1}"]
                if k < L:
                    out[f"bwd{k}"] = scale * v[f"bwd{k}"]
                const = v[f"bias{k}"] if c.has_bias else 0.0
            out[f"fwd{k - 1}"] = scale * fw
            if c.has_bias:
                out[f"bias{k}"] = scale[:, 0] * const - v[f"gain{k}"] * v[f"offset{k}"]
        return out

    # -- phases ---------------------------------------------------------------
    def _read(self, a):
        std = self.circuit.mismatch.read_noise_std
        return a + std * self._reads.standard_normal(a.shape) if std else a

    def _phase(self, x, relax) -> Phase:
        c = self.circuit
        if c.vground:
            return self._vground_phase(x, relax)
        volts = [self._read(v) for v in relax.states]
        r = c.outputs(relax.states, x)
        probes = {"exact_V": relax.states, "r": [self._read(rk) for rk in r]}
        if c.crossbar:
            probes["rb"] = [self._read(c.inverter(k, rk)) for k, rk in enumerate(r)]
        states = [c.to_network_units(k, v) for k, v in enumerate(volts, start=1)]
        probes["V"] = volts
        return Phase(states, relax.residual, relax.steps, relax.converged, probes)

    def _vground_phase(self, x, relax) -> Phase:
        c = self.circuit
        cols, outs = zip(*(split(c, k, s) for k, s in enumerate(relax.states, start=1)))
        r = [c.inputs(x)] + [c.buffer(k, o) for k, o in enumerate(outs, start=1)]
        volts = [self._read(o) for o in outs]
        probes = {"exact_V": relax.states, "V": volts, "Vcol": [self._read(v) for v in cols],
                  "r": [self._read(rk) for rk in r], "rb": [self._read(c.inverter(k, rk)) for k, rk in enumerate(r)]}
        states = [c.to_network_units(k, v) for k, v in enumerate(volts, start=1)]
        return Phase(states, relax.residual, relax.steps, relax.converged, probes)

    def relax_free(self, x):
        return self._phase(x, self.solver.solve(self.circuit, x))

    def relax_nudged(self, x, y, beta, start):
        return self._phase(x, self.solver.solve(self.circuit, x, y, beta, start=start.probes["exact_V"]))

    def local_update(self, x, free, nudged, centered=False):
        """Per element: (voltage across it in the free phase) x (change at its neuron terminal), summed over the
        batch.  ``centered``: every measured node voltage of the free phase is taken minus its batch mean (the
        bias rail is a source, not a measurement, and stays)."""
        c, L = self.circuit, self.circuit.n_layers
        if c.vground:
            return self._vground_update(free, nudged, centered)
        V0 = free.probes["V"]
        dV = [b - a for a, b in zip(V0, nudged.probes["V"])]
        r, rb = free.probes["r"], free.probes.get("rb")
        if centered:
            r, V0 = centre(r), centre(V0)
            rb = centre(rb) if rb is not None else None
        out = {}
        for k in range(1, L + 1):
            # (unit_gain / g_node) * dI/dG * unit * du = dI/dG * du: the layer factor is unit_gain
            d = c.unit_gain[k - 1] * dV[k - 1]
            if not c.crossbar:
                out[f"fwd{k - 1}"] = d.T @ r[k - 1]
                if k < L:
                    out[f"bwd{k}"] = d.T @ r[k + 1]
                if c.has_bias:
                    out[f"bias{k}"] = d.sum(axis=0)
                continue
            # the -V_b0 part of (V_a0 - V_b0) dV_b is shared by every device of a row
            pair_updates(c, k, d, (d * V0[k - 1]).sum(axis=0), r, rb, out)
        return out


    def _vground_weights(self):
        """Effective weights of the vground level at an ideal virtual ground (V_col = V_os) with linear devices:
        h = I_dev / g_f - V_os, pre-activation gain (h - offset); the op-amps' finite gain and the devices'
        nonlinearity are left out."""
        from ..circuit.vground import Layer

        c, v, out = self.circuit, self.circuit.values, {}
        for k in range(1, c.n_layers + 1):
            lay = Layer(c, k)
            scale = v[f"gain{k}"] / lay.gf
            for j, W in lay.W.items():
                out[f"fwd{j}" if j == k - 1 else f"bwd{k}"] = scale[:, None] * W
            if c.has_bias:
                out[f"bias{k}"] = scale * (lay.const + lay.col_const - lay.S * lay.vos) - v[f"gain{k}"] * (lay.vos + v[f"offset{k}"])
        return out

    def _vground_update(self, free, nudged, centered):
        """(V_a0 - V_col,i0) (h_i,beta - h_i0) per device, summed over the batch (see the module docstring)."""
        c, L = self.circuit, self.circuit.n_layers
        dh = [a - b for a, b in zip(free.probes["V"], nudged.probes["V"])]   # h = -V_out
        r, rb, vcol = free.probes["r"], free.probes["rb"], free.probes["Vcol"]
        if wired(c):
            return self._wired_update(dh, r, rb, vcol, centered)
        if centered:
            r, rb, vcol = centre(r), centre(rb), centre(vcol)
        out = {}
        for k in range(1, L + 1):
            d = dh[k - 1]
            pair_updates(c, k, d, (d * vcol[k - 1]).sum(axis=0), r, rb, out)
        return out


    def _wired_update(self, dh, r, rb, vcol, centered):
        """With wire resistance: the free phase's voltage across each device at its crosspoint (from the tile's
        network, :func:`~analogprop.circuit.wires.device_voltages`, at the measured row drives and column
        voltages) times the change at its column's stage output, summed over the batch."""
        c, L, out = self.circuit, self.circuit.n_layers, {}
        rail = c.design.v_rail
        for k in range(1, L + 1):
            drives = {f"fwd{k - 1}_p": r[k - 1], f"fwd{k - 1}_n": rb[k - 1]}
            if k < L:
                drives |= {f"bwd{k}_p": r[k + 1], f"bwd{k}_n": rb[k + 1]}
            if c.has_bias:
                n = dh[k - 1].shape[0]
                drives |= {f"bias{k}_p": np.full((n, 1), rail), f"bias{k}_n": np.full((n, 1), -rail)}
            for key, vd in drives.items():
                V = device_voltages(c, k, key, vd, vcol[k - 1])
                V = V - V.mean(axis=0) if centered else V
                d = dh[k - 1].reshape(dh[k - 1].shape + (1,) * (V.ndim - 2))
                out[key] = (d * V).sum(axis=0)
        return out


def pair_updates(circuit, k, d, vd, r, rb, out):
    """Layer k's conductance-pair updates into ``out``: ``d.T @ V_a - vd`` per device, ``d`` the batch of node
    changes (batch, n_k), ``vd`` the node-voltage part shared by every device of a row, ``V_a`` the driving row
    (``r`` / ``rb``, or the bias rails)."""
    for name, src in ((f"fwd{k - 1}", k - 1), (f"bwd{k}", k + 1)):
        if src > circuit.n_layers:
            continue
        out[f"{name}_p"] = d.T @ r[src] - vd[:, None]
        out[f"{name}_n"] = d.T @ rb[src] - vd[:, None]
    if circuit.has_bias:
        rail = circuit.design.v_rail
        out[f"bias{k}_p"] = rail * d.sum(axis=0) - vd
        out[f"bias{k}_n"] = -rail * d.sum(axis=0) - vd


def make_circuit_driver(network, *, level="behavioural", mismatch: Mismatch | None = None, die: int = 0,
                        design: CrossbarDesign | None = None, clamp: bool = True,
                        newton_iters: int = CircuitSolver.newton_iters, tol: float = 1e-5,
                        max_sweeps: int = 500, nonideal: Nonidealities | None = None) -> CircuitDriver:
    """The ``circuit`` driver of a run: ``network`` deployed on die ``die`` (see :meth:`CircuitDriver.from_network`),
    solved to ``tol``, the run's tolerance on states in network units (the solver's is in volts)."""
    if network.readout != "dynamic":
        raise ConfigError(f"readout {network.readout!r} needs the ideal driver: the circuit driver's output is a dynamic layer (use readout dynamic)")
    drv = CircuitDriver.from_network(network.sizes, network.params, level, mismatch, die, design, clamp=clamp,
                                     nonideal=nonideal)
    if drv.circuit.vground:   # states are volts (h = -V_out): the run's tolerance applies as is
        drv.solver = VgroundSolver(tol=tol, max_sweeps=max_sweeps, newton_iters=min(newton_iters, 50))
        return drv
    drv.solver = CircuitSolver(tol=tol / max(drv.circuit.unit_gain), max_sweeps=max_sweeps,
                               newton_iters=newton_iters)
    return drv
