"""A compiled circuit: every device of a layered network, nominal and as built.

This module is the single definition of the circuit that every solver
(:mod:`.solver`, ngspice netlists) follows.  It holds plain numpy arrays
and knows nothing of training.

Units (normalised)
------------------
Voltages in volts; conductances and transconductances in ``g_unit``
siemens; currents in ``g_unit * 1 V``; capacitances in ``c_unit`` farads;
time in ``c_unit / g_unit`` seconds.  A netlist multiplies conductances,
transconductances and currents by ``g_unit`` and capacitances by ``c_unit``
(a resistor of conductance G is ``1 / (G * g_unit)`` ohms).

Nodes
-----
* ``h{k}_{i}``   neuron i of dynamic layer k = 1..L (L = output layer): the
  free nodes, each with a capacitor and a leak conductance to ground.
* ``r{k}_{i}``   buffer output of neuron i of layer k = 0..L.  ``r0_i`` is an
  ideal voltage source at ``rho(x_i) = clip(x_i, 0, 1)`` (the input); for
  k >= 1 it is the buffer ``r = clip(gain * (V_h - offset), 0, 1)`` (an
  op-amp stage with rails at 0 V and 1 V that does not load ``h{k}_{i}``).
* ``rb{k}_{i}``  (crossbar only) inverted copy of ``r{k}_{i}``, k = 0..L:
  ``rb = inv_offset - inv_gain * r`` (a linear inverting stage; offset is
  output-referred).
* ``y{i}``       target source of output unit i, at ``target_scale * y_i`` volts.
* ``vp`` / ``vn`` (crossbar only) bias rails at ``+v_rail`` / ``-v_rail``.
* ``0``          ground.

Devices (keys of :attr:`Circuit.values` and :attr:`Circuit.nominal`)
--------------------------------------------------------------------
Both levels, for dynamic layers k = 1..L, arrays of shape (n_k,):

* ``leak{k}``   conductance h{k}_i -> ground.
* ``cap{k}``    capacitor h{k}_i -> ground (transients only).
* ``gain{k}``, ``offset{k}``  buffer gain and input offset (volts) of r{k}_i.
* ``nudge``     (n_L,) conductance per unit beta of the switched nudge
  resistor h{L}_i -> y{i}: in a phase with strength beta its conductance is
  ``beta * nudge_i`` (beta = 0: switch open).
* optional (``compile_circuit(clamp=True)``; absent otherwise) ``clamp{k}``
  (conductance), ``clamp_lo{k}``, ``clamp_hi{k}`` (volts): a clamp that
  draws ``clamp * (max(V_h - clamp_hi, 0) + min(V_h - clamp_lo, 0))`` out
  of h{k}_i to ground (two steep diodes to reference levels).  Nominal:
  ``clamp_ratio`` times the node's conductance, levels 0 and
  ``1 / unit_gain[k]`` (the buffer's input range), offsets ``offset_dtod``.
  With it the node voltage follows the paper's projected dynamics (Eq. 59):
  a saturated neuron's node stays at the rail, so the local rule sees no
  change there (without it V_h runs past the rails and only rho(V_h) is
  the paper's state).  Level vground with ``Nonidealities.clamp_model``
  ``"diode"``: no ``clamp{k}``; the clamp is two antiparallel diodes across
  each feedback path, behind bias sources at ``clamp_hi{k}`` and
  ``clamp_lo{k}`` (see :mod:`.vground`, :func:`.nonideal.diode_branch`).

Behavioural level (exactly the paper's model, Eq. 6-15):

* ``fwd{k}`` (n_{k+1}, n_k), k = 0..L-1: VCCS injecting
  ``fwd{k}[i, j] * V(r{k}_j)`` into h{k+1}_i.
* ``bwd{k}`` (n_k, n_{k+1}), k = 1..L-1: VCCS injecting
  ``bwd{k}[i, j] * V(r{k+1}_j)`` into h{k}_i.
* ``bias{k}`` (n_k,), k = 1..L: current source injecting ``bias{k}[i]`` into h{k}_i.
  Nominal: the network's weights; leak, gain, nudge 1; offsets 0.

Crossbar level (resistive pairs, weight-dependent leak):

* ``fwd{k}_p`` / ``fwd{k}_n`` (n_{k+1}, n_k): conductance r{k}_j -> h{k+1}_i /
  rb{k}_j -> h{k+1}_i.
* ``bwd{k}_p`` / ``bwd{k}_n`` (n_k, n_{k+1}): conductance r{k+1}_j -> h{k}_i /
  rb{k+1}_j -> h{k}_i.
* ``bias{k}_p`` / ``bias{k}_n`` (n_k,): conductance vp -> h{k}_i / vn -> h{k}_i.
* ``inv_gain{k}``, ``inv_offset{k}`` (n_k,), k = 0..L: the inverters.
  Nominal mapping of a weight W (:class:`CrossbarDesign`): ``Gp = g_c + g_w W / 2``,
  ``Gn = g_c - g_w W / 2`` (programmed: clipped to [g_min, g_max] and
  quantised); every node then has the nominal total conductance
  ``g_node[k] = leak + 2 g_c (fan-in incl. the bias pair)``, and the buffer
  gain is ``unit_gain[k] = g_node[k] / g_w`` so that the neuron's
  pre-activation ``u = unit_gain * V_h`` equals ``W rho + b`` of the
  network.  The nudge resistor is ``nudge_i = g_node[L]`` (beta is relative
  to the node's conductance) and the target voltage is ``y / unit_gain[L]``.

Programmable elements (both levels) are built as
``nominal * exp(g_dtod * z) + write noise`` (z fixed per die and device,
write noise fresh per programming; crossbar conductances floored at 0); the
other devices as ``nominal * exp(spread * z)`` (offsets and clamp levels:
``nominal + offset_dtod * z``); see :mod:`.mismatch`.

Kirchhoff's current law (:meth:`Circuit.currents`)
--------------------------------------------------
The net current into h{k}_i (``C dV/dt`` of its capacitor) is

    I = inj_k - gtot_k * V_h

with ``inj_k`` the current the node would receive at 0 V and ``gtot_k`` the
conductance it sees, both functions of the neighbours' driven outputs only:

* behavioural: ``inj = sum_j G_ij r_j + bias_i + beta nudge_i target_i``,
  ``gtot = leak_i + beta nudge_i``;
* crossbar: ``inj = sum_j (Gp_ij r_j + Gn_ij rb_j) + v_rail (Gbp_i - Gbn_i)
  + beta nudge_i target_i``, ``gtot = leak_i + sum_j (Gp_ij + Gn_ij)
  + Gbp_i + Gbn_i + beta nudge_i``.

(the nudge terms only on the output layer), minus the clamp current when
present.  Without clamps node voltages are not clipped: compare with the
ideal fixed point through ``rho(V) = h``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, check_finite
from .mismatch import CrossbarDesign, Mismatch, standard_normal, write_noise
from .nonideal import Nonidealities

LEVELS = ("behavioural", "crossbar", "vground")
_ALIASES = {"0": "behavioural", "behavioral": "behavioural", "behavioural": "behavioural",
            "1": "crossbar", "crossbar": "crossbar", "2": "vground", "vground": "vground"}


def parse_level(level) -> str:
    """'behavioural' / 'behavioral' / 0, 'crossbar' / 1 or 'vground' / 2."""
    name = _ALIASES.get(str(level).strip().lower())
    if name is None:
        raise ConfigError(f"circuit level {level!r} is not one of behavioural (0), crossbar (1), vground (2)")
    return name


def weight_names(sizes, bias: bool = True) -> list[str]:
    """Network parameter names (fwd{k}, bwd{k}, bias{k}) of a layered network."""
    L = len(sizes) - 1
    names = [f"fwd{k}" for k in range(L)] + [f"bwd{k}" for k in range(1, L)]
    return names + ([f"bias{k}" for k in range(1, L + 1)] if bias else [])


def weight_shape(sizes, name: str) -> tuple[int, ...]:
    kind, k = re.fullmatch(r"(fwd|bwd|bias)(\d+)", name).groups()
    k = int(k)
    if kind == "fwd":
        return (sizes[k + 1], sizes[k])
    if kind == "bwd":
        return (sizes[k], sizes[k + 1])
    return (sizes[k],)


@dataclass
class Circuit:
    """A compiled circuit; see the module docstring for nodes, devices and units.

    ``nominal`` holds the design values (programmable elements: the values
    last programmed, after clipping and quantisation); ``values`` the
    devices as built on die ``die`` (mismatch and write noise included).
    ``programmable`` lists the keys of the programmable elements.
    """

    level: str
    sizes: tuple[int, ...]
    nominal: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    programmable: tuple[str, ...]
    die: int = 0
    mismatch: Mismatch = field(default_factory=Mismatch)
    design: CrossbarDesign = field(default_factory=CrossbarDesign)
    unit_gain: tuple[float, ...] = ()   # per dynamic layer k = 1..L
    g_node: tuple[float, ...] = ()      # per dynamic layer (crossbar nominal total conductance)
    target_scale: float = 1.0
    g_unit: float = 1e-5
    c_unit: float = 1e-12
    writes: int = 0      # programming operations so far: the index of each write's noise draw
    revision: int = 0    # changes whenever ``values`` do (solvers cache on it)
    nonideal: Nonidealities = field(default_factory=Nonidealities)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def crossbar(self) -> bool:
        """Conductance pairs (levels crossbar and vground)."""
        return self.level in ("crossbar", "vground")

    @property
    def vground(self) -> bool:
        return self.level == "vground"

    def _spread(self, key, shape):
        """Multiplicative die spread of programmable array ``key`` (vground: Pelgrom and spatial parts too,
        and the temperature factor of its resistors)."""
        if not self.vground:
            return _lognormal(self.die, key, shape, self.mismatch.g_dtod)
        nid = self.nonideal
        z = standard_normal(self.die, key, shape) if (self.mismatch.g_dtod or nid.pelgrom_a) else None
        return np.exp(nid.log_spread(self.die, key, shape, self.mismatch.g_dtod, z)) / self._device_temp

    @property
    def _device_temp(self) -> float:
        """R(T)/R(tnom) of linear programmable devices (sinh devices: the same factor on G)."""
        return self.nonideal.temp_factor

    @property
    def has_bias(self) -> bool:
        return ("bias1" if not self.crossbar else "bias1_p") in self.values

    # -- programming -------------------------------------------------------
    def program(self, params: dict[str, np.ndarray], verify: bool = False) -> None:
        """Write programmable elements: clip/quantise (crossbar), apply the die's spread and fresh write noise.

        ``params`` maps some or all programmable keys to target values; the
        rest keep their programmed value but are not rewritten.  ``verify``
        is write-verify programming: each device is read back and its code
        corrected, so the device's own spread is compensated (the code
        programmed is the one nearest to ``target / spread``); write noise
        and quantisation remain.
        """
        unknown = sorted(set(params) - set(self.programmable))
        if unknown:
            raise ConfigError(f"{unknown} are not programmable elements of this {self.level} circuit "
                              f"(expected some of {list(self.programmable)})")
        keys = sorted(params)
        targets = {}
        for k in keys:
            v = np.array(params[k], dtype=float)
            if v.shape != self.nominal[k].shape:
                raise ConfigError(f"parameter {k} has shape {v.shape}, expected {self.nominal[k].shape}")
            check_finite(f"parameter {k}", v)
            if verify:
                v = v / self._spread(k, v.shape)
            targets[k] = self.design.quantise(v) if self.crossbar else v
        self.writes += 1
        noise = write_noise(self.die, self.writes, [(k, targets[k].shape) for k in keys],
                            self.mismatch.write_noise_std)
        for k in keys:
            self.nominal[k] = targets[k]
            v = targets[k] * self._spread(k, targets[k].shape) + noise[k]
            self.values[k] = np.maximum(v, 0.0) if self.crossbar else v
        self.revision += 1

    def restore(self, values: dict[str, np.ndarray], writes: int) -> None:
        """Put back the as-built programmable devices and write count of a checkpoint.

        Programming the checkpoint's parameters again would draw fresh write
        noise; this restores the devices as they were, so that a resumed run
        continues as if never stopped.
        """
        missing = sorted(set(self.programmable) - set(values))
        if missing:
            raise ConfigError(f"device state lacks the programmable elements {missing}")
        for k in self.programmable:
            v = np.array(values[k], dtype=float)
            if v.shape != self.values[k].shape:
                raise ConfigError(f"device state of {k} has shape {v.shape}, expected {self.values[k].shape}")
            check_finite(f"device state of {k}", v)
            self.values[k] = v
        self.writes = int(writes)
        self.revision += 1

    # -- the device equations (shared by every solver) ----------------------
    def inputs(self, x) -> np.ndarray:
        """r0 = rho(x): the input sources."""
        return np.clip(x, 0.0, 1.0)

    def buffer(self, k: int, v) -> np.ndarray:
        """r{k} = clip(gain (V_h - offset), 0, 1), k = 1..L (vground: v is V_out and V_h = -V_out)."""
        if self.vground:
            v = -v
        return np.minimum(np.maximum(self.values[f"gain{k}"] * (v - self.values[f"offset{k}"]), 0.0), 1.0)

    def inverter(self, k: int, r) -> np.ndarray:
        """rb{k} = inv_offset - inv_gain r (crossbar), k = 0..L."""
        return self.values[f"inv_offset{k}"] - self.values[f"inv_gain{k}"] * r

    def target(self, y) -> np.ndarray:
        """Voltage of the target sources y{i}."""
        return self.target_scale * np.asarray(y, dtype=float)

    def conductance(self, k: int, beta: float = 0.0) -> np.ndarray:
        """gtot_k (n_k,): total conductance from h{k}_i to its driven neighbours and ground."""
        v = self.values
        g = v[f"leak{k}"].copy()
        if self.crossbar:
            L = self.n_layers
            g += v[f"fwd{k - 1}_p"].sum(1) + v[f"fwd{k - 1}_n"].sum(1)
            if k < L:
                g += v[f"bwd{k}_p"].sum(1) + v[f"bwd{k}_n"].sum(1)
            if self.has_bias:
                g += v[f"bias{k}_p"] + v[f"bias{k}_n"]
        if k == self.n_layers and beta:
            g = g + beta * v["nudge"]
        return g

    def injection(self, k: int, r_prev, r_next, y=None, beta: float = 0.0) -> np.ndarray:
        """inj_k (batch, n_k): current into h{k} at V_h = 0, from the outputs of layers k-1 and k+1.

        ``r_prev`` = r{k-1} (r0 = inputs), ``r_next`` = r{k+1} (None for k = L).
        """
        v, L = self.values, self.n_layers
        if self.crossbar:
            out = r_prev @ v[f"fwd{k - 1}_p"].T + self.inverter(k - 1, r_prev) @ v[f"fwd{k - 1}_n"].T
            if k < L:
                out += r_next @ v[f"bwd{k}_p"].T + self.inverter(k + 1, r_next) @ v[f"bwd{k}_n"].T
            if self.has_bias:
                out += self.design.v_rail * (v[f"bias{k}_p"] - v[f"bias{k}_n"])
        else:
            out = r_prev @ v[f"fwd{k - 1}"].T
            if k < L:
                out += r_next @ v[f"bwd{k}"].T
            if self.has_bias:
                out += v[f"bias{k}"]
        if k == L and beta:
            out = out + beta * v["nudge"] * self.target(y)
        return out

    def outputs(self, V, x) -> list[np.ndarray]:
        """Buffer outputs [r0, r1, ..., rL] of node voltages V = [V1..VL]."""
        return [self.inputs(x)] + [self.buffer(k, V[k - 1]) for k in range(1, self.n_layers + 1)]

    def buffer_slope(self, k: int, v) -> np.ndarray:
        """dr{k}/dv of :meth:`buffer` (0 where the output is at a rail)."""
        c = self.values
        sign = -1.0 if self.vground else 1.0
        u = c[f"gain{k}"] * (sign * v - c[f"offset{k}"])
        return np.where((u > 0) & (u < 1), sign * c[f"gain{k}"], 0.0)

    def currents(self, V, x, y=None, beta: float = 0.0) -> list[np.ndarray]:
        """KCL: net current into every free node, [I_1..I_L] each (batch, n_k); zero at an operating point
        (not for vground: see :func:`.vground.residual`)."""
        r, L = self.outputs(V, x), self.n_layers
        return [self.injection(k, r[k - 1], r[k + 1] if k < L else None, y, beta)
                - V[k - 1] * self.conductance(k, beta) - self.clamp_current(k, V[k - 1]) for k in range(1, L + 1)]

    @property
    def clamped(self) -> bool:
        return "clamp_lo1" in self.values

    @property
    def diode_clamped(self) -> bool:
        """Node clamps built as diodes (level vground, ``clamp_model`` "diode")."""
        return self.clamped and "clamp1" not in self.values

    def clamp_current(self, k: int, v):
        """Current the clamp of layer k draws from its nodes to ground (0 without clamps)."""
        if not self.clamped:
            return 0.0
        c = self.values
        return c[f"clamp{k}"] * (np.maximum(v - c[f"clamp_hi{k}"], 0.0) + np.minimum(v - c[f"clamp_lo{k}"], 0.0))

    def to_network_units(self, k: int, v) -> np.ndarray:
        """Neuron pre-activation u = unit_gain[k] V_h (network units) of layer k's node voltages
        (vground: v is V_out, u = -V_out)."""
        return (-1.0 if self.vground else self.unit_gain[k - 1]) * v

    def summary(self) -> dict:
        """Plain description (for netlist headers and run records)."""
        return {"level": self.level, "sizes": list(self.sizes), "die": self.die,
                "mismatch": self.mismatch.to_dict(),
                "design": self.design.to_dict() if self.crossbar else None,
                "nonideal": self.nonideal.to_dict() if self.vground else None,
                "unit_gain": list(self.unit_gain), "target_scale": self.target_scale,
                "g_unit": self.g_unit, "c_unit": self.c_unit, "writes": self.writes, "clamped": self.clamped}


def _lognormal(die, key, shape, sigma):
    if sigma == 0:
        return np.ones(shape)
    return np.exp(sigma * standard_normal(die, key, shape))


def _normal(die, key, shape, sigma):
    if sigma == 0:
        return np.zeros(shape)
    return sigma * standard_normal(die, key, shape)


def crossbar_pairs(design: CrossbarDesign, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Nominal mapping of network weights to conductance pairs (before clipping/quantisation)."""
    gc, gw = design.g_center, design.g_w
    out = {}
    for name, w in weights.items():
        out[f"{name}_p"] = gc + 0.5 * gw * np.asarray(w, float)
        out[f"{name}_n"] = gc - 0.5 * gw * np.asarray(w, float)
    return out


def compile_circuit(sizes, weights: dict[str, np.ndarray], level="behavioural", mismatch: Mismatch | None = None,
                    die: int = 0, design: CrossbarDesign | None = None,
                    g_unit: float = 1e-5, c_unit: float = 1e-12, clamp: bool = False,
                    clamp_ratio: float = 1e7, nonideal: Nonidealities | None = None) -> Circuit:
    """Compile network weights (names fwd{k}, bwd{k}, bias{k}) into a circuit on die `die`.

    The crossbar level maps each weight onto a conductance pair with
    :func:`crossbar_pairs`; with zero mismatch and in-range weights the
    circuit realises exactly the network.  ``clamp`` adds the node clamps
    (conductance ``clamp_ratio`` times the node's).
    """
    level = parse_level(level)
    nonideal = nonideal or Nonidealities()
    mismatch = mismatch or Mismatch()
    design = design or CrossbarDesign()
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ConfigError(f"circuit sizes {sizes} need an input and an output layer of at least one unit")
    try:
        die = int(die)
    except (TypeError, ValueError):
        raise ConfigError(f"die seed must be an integer, got {die!r}") from None
    if die < 0:
        raise ConfigError(f"die seed must be >= 0, got {die}")
    for name, v in (("g_unit", g_unit), ("c_unit", c_unit), ("clamp_ratio", clamp_ratio)):
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(f"physical scale {name} must be a finite number > 0, got {v}")
    bias = any(n.startswith("bias") for n in weights)
    expected = weight_names(sizes, bias)
    if sorted(weights) != sorted(expected):
        raise ConfigError(f"weights {sorted(weights)} do not match a {'-'.join(map(str, sizes))} network "
                          f"(expected {expected})")
    for name in expected:
        if np.shape(weights[name]) != weight_shape(sizes, name):
            raise ConfigError(f"weight {name} has shape {np.shape(weights[name])}, expected {weight_shape(sizes, name)}")
        check_finite(f"weight {name}", weights[name])

    L = len(sizes) - 1
    nominal: dict[str, np.ndarray] = {}
    if level == "crossbar":
        fan_in = [sizes[k - 1] + (sizes[k + 1] if k < L else 0) + (1 if bias else 0) for k in range(1, L + 1)]
        g_node = tuple(design.leak + 2 * design.g_center * f for f in fan_in)
        unit_gain = tuple(g / design.g_w for g in g_node)
        target_scale = 1.0 / unit_gain[-1]
        leak = design.leak
        for k in range(L + 1):
            nominal[f"inv_gain{k}"] = np.ones(sizes[k])
            nominal[f"inv_offset{k}"] = np.zeros(sizes[k])
        prog = crossbar_pairs(design, weights)
        nudge = g_node[-1]
    elif level == "vground":
        g_node, unit_gain, target_scale, leak = (design.g_w,) * L, (1.0,) * L, 1.0, design.g_w
        for k in range(L + 1):
            nominal[f"inv_gain{k}"] = np.ones(sizes[k])
            nominal[f"inv_offset{k}"] = np.zeros(sizes[k])
        scaled = {n: (np.asarray(w, float) / design.v_rail if n.startswith("bias") else w) for n, w in weights.items()}
        prog = crossbar_pairs(design, scaled)
        nudge = design.g_w
    else:
        g_node, unit_gain, target_scale, leak = (), (1.0,) * L, 1.0, 1.0
        prog = {k: np.asarray(v, float) for k, v in weights.items()}
        nudge = 1.0
    for k in range(1, L + 1):
        n = sizes[k]
        if level == "vground":
            nominal[f"gf{k}"] = np.full(n, leak)
            nominal[f"cf{k}"] = np.ones(n)
            nominal[f"vos{k}"] = np.zeros(n)
        else:
            nominal[f"leak{k}"] = np.full(n, leak)
            nominal[f"cap{k}"] = np.ones(n)
        nominal[f"gain{k}"] = np.full(n, unit_gain[k - 1])
        nominal[f"offset{k}"] = np.zeros(n)
        if clamp and not (level == "vground" and nonideal.clamp_model == "diode"):
            nominal[f"clamp{k}"] = np.full(n, clamp_ratio * (g_node[k - 1] if g_node else leak))
        if clamp:
            nominal[f"clamp_lo{k}"] = np.zeros(n)
            nominal[f"clamp_hi{k}"] = np.full(n, 1.0 / unit_gain[k - 1])
    nominal["nudge"] = np.full(sizes[-1], float(nudge))

    spread = {"leak": ("log", mismatch.leak_dtod), "cap": ("log", mismatch.cap_dtod),
              "gain": ("log", mismatch.gain_dtod), "offset": ("add", mismatch.offset_dtod),
              "inv_gain": ("log", mismatch.gain_dtod), "inv_offset": ("add", mismatch.offset_dtod),
              "nudge": ("log", mismatch.g_dtod), "clamp": ("log", 0.0),
              "clamp_lo": ("add", mismatch.offset_dtod), "clamp_hi": ("add", mismatch.offset_dtod),
              "gf": ("log", mismatch.leak_dtod), "cf": ("log", mismatch.cap_dtod),
              "vos": ("add", nonideal.opamp_offset)}
    values = {}
    for key, nom in nominal.items():
        kind, sigma = spread[key.rstrip("0123456789")]
        values[key] = (nom * _lognormal(die, key, nom.shape, sigma) if kind == "log"
                       else nom + _normal(die, key, nom.shape, sigma))
    for key, v in prog.items():
        nominal[key], values[key] = np.zeros_like(v), np.zeros_like(v)
    circuit = Circuit(level, sizes, nominal, values, tuple(sorted(prog)), die, mismatch, design,
                      unit_gain, g_node, target_scale, g_unit, c_unit, nonideal=nonideal)
    circuit.program(prog)
    return circuit
