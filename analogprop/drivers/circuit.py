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

Reads (every reported voltage) carry ``read_noise_std``; every programming
clips/quantises and adds ``write_noise_std`` (see :mod:`analogprop.circuit`).
"""
from __future__ import annotations

import json
import re

import numpy as np

from ..circuit.description import Circuit, compile_circuit, crossbar_pairs
from ..circuit.mismatch import CrossbarDesign, Mismatch, read_rng
from ..circuit.solver import CircuitSolver
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
        self.solver = solver or CircuitSolver()
        self._reads = read_rng(circuit.die)
        self._unit = circuit.design.g_w if circuit.crossbar else 1.0  # g_unit per parameter unit

    @classmethod
    def from_network(cls, sizes, weights, level="behavioural", mismatch: Mismatch | None = None, die: int = 0,
                     design: CrossbarDesign | None = None, solver: CircuitSolver | None = None,
                     clamp: bool = True) -> "CircuitDriver":
        """Deploy network weights (fwd/bwd/bias) on a die: the nominal transfer of :func:`compile_circuit`.

        ``clamp`` (default) adds the node clamps, so that the circuit follows
        the paper's projected dynamics and the local rule sees no change at
        saturated neurons.
        """
        return cls(compile_circuit(sizes, weights, level, mismatch, die, design, clamp=clamp), solver)

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
        prog = crossbar_pairs(self.circuit.design, weights) if self.circuit.crossbar else weights
        self.circuit.program({k: np.asarray(v, float) for k, v in prog.items()}, verify=verify)

    def effective_weights(self):
        """Weights the die realises: d(pre-activation)/d r_j of each neuron, bias at r = 0.

        The fixed point then reads ``r = clip(W r + b)`` with these W, b (pre-activation ``gain (V - offset)``).
        """
        c, v, L = self.circuit, self.circuit.values, self.circuit.n_layers
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
        volts = [self._read(v) for v in relax.states]
        r = c.outputs(relax.states, x)
        probes = {"exact_V": relax.states, "r": [self._read(rk) for rk in r]}
        if c.crossbar:
            probes["rb"] = [self._read(c.inverter(k, rk)) for k, rk in enumerate(r)]
        states = [c.to_network_units(k, v) for k, v in enumerate(volts, start=1)]
        probes["V"] = volts
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
            v = V0[k - 1]
            vd = (d * v).sum(axis=0)  # the -V_b0 part of (V_a0 - V_b0) dV_b, shared by every device of a row
            for name, src in ((f"fwd{k - 1}", k - 1), (f"bwd{k}", k + 1)):
                if src > L:
                    continue
                out[f"{name}_p"] = d.T @ r[src] - vd[:, None]
                out[f"{name}_n"] = d.T @ rb[src] - vd[:, None]
            if c.has_bias:
                rail = c.design.v_rail
                out[f"bias{k}_p"] = rail * d.sum(axis=0) - vd
                out[f"bias{k}_n"] = -rail * d.sum(axis=0) - vd
        return out


def mismatch_from_config(cfg: dict) -> Mismatch:
    from dataclasses import fields

    kw = {f.name: cfg[f"driver_{f.name}"] for f in fields(Mismatch) if cfg.get(f"driver_{f.name}") is not None}
    return Mismatch(**{k: _number(f"driver_{k}", v) for k, v in kw.items()})


def design_from_config(cfg: dict) -> CrossbarDesign:
    kw = {}
    for name in ("g_min", "g_max", "w_max"):
        if cfg.get(f"driver_{name}") is not None:
            kw[name] = _number(f"driver_{name}", cfg[f"driver_{name}"])
    bits = cfg.get("driver_resolution_bits")
    if bits is not None:
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) and not (
                isinstance(bits, float) and bits.is_integer()):
            raise ConfigError(f"driver_resolution_bits must be an integer, got {bits!r}")
        kw["resolution_bits"] = int(bits)
    return CrossbarDesign(**kw)


def _number(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {v!r}")
    return float(v)


def from_config(cfg: dict, network) -> CircuitDriver:
    """The ``circuit`` driver of a run configuration (keys ``driver_*``, see :func:`add_circuit_options`)."""
    from ..circuit.description import parse_level

    level = parse_level(cfg.get("driver_level") or "behavioural")
    mismatch = mismatch_from_config(cfg)
    design = design_from_config(cfg)
    known = {"driver_level", "driver_die", "driver_newton_iters", "driver_clamp", "driver_resolution_bits", "driver_g_min",
             "driver_g_max", "driver_w_max"} | {f"driver_{k}" for k in mismatch.to_dict()}
    unknown = sorted(k for k in cfg if k.startswith("driver_") and k not in known and cfg[k] is not None)
    if unknown:
        raise ConfigError(f"unknown configuration keys {unknown} for the circuit driver")
    die = cfg.get("driver_die") or 0
    # the run's tol is on states in network units; the solver's is in volts
    solver_tol = float(cfg.get("tol", 1e-5))
    clamp = cfg.get("driver_clamp")
    drv = CircuitDriver.from_network(network.sizes, network.params, level, mismatch, die, design,
                                     clamp=True if clamp is None else bool(clamp))
    drv.solver = CircuitSolver(tol=solver_tol / max(drv.circuit.unit_gain), max_sweeps=cfg.get("max_steps", 200),
                               newton_iters=CircuitSolver.newton_iters if cfg.get("driver_newton_iters") is None else cfg["driver_newton_iters"])
    return drv


def add_circuit_options(p) -> None:
    """Options of ``train --driver circuit`` (config keys ``driver_*``)."""
    g = p.add_argument_group("circuit (--driver circuit)")
    g.add_argument("--level", dest="driver_level", metavar="LEVEL", help="behavioural (0, default) or crossbar (1)")
    g.add_argument("--die", dest="driver_die", type=int, metavar="SEED", help="die seed of the device mismatch (default 0)")
    for name, help in (("g_dtod", "log-normal spread of conductances/transconductances"),
                       ("gain_dtod", "log-normal spread of buffer and inverter gains"),
                       ("offset_dtod", "std of buffer/inverter offsets (V)"),
                       ("leak_dtod", "log-normal spread of leak conductances"),
                       ("cap_dtod", "log-normal spread of capacitors"),
                       ("write_noise_std", "std of the additive programming error per write (g_unit)"),
                       ("read_noise_std", "std of the noise of every measured voltage (V)"),
                       ("g_min", "crossbar: smallest programmable conductance (g_unit, default 0.1)"),
                       ("g_max", "crossbar: largest programmable conductance (g_unit, default 1.0)"),
                       ("w_max", "crossbar: largest |weight| of the nominal mapping (default 2)")):
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"driver_{name}", type=float, metavar="X", help=help)
    g.add_argument("--resolution-bits", dest="driver_resolution_bits", type=int, metavar="BITS",
                   help="crossbar: programming resolution, 2**bits levels (default continuous)")
    g.add_argument("--no-clamp", dest="driver_clamp", action="store_false", default=None,
                   help="no node clamps: node voltages run past the buffers' range (default: clamped)")
    g.add_argument("--newton-iters", dest="driver_newton_iters", type=int, metavar="N",
                   help="Newton iterations after the sweeps for unconverged samples (default 100)")
