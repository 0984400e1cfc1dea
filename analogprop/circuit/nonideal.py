"""Named non-idealities of the virtual-ground crossbar (level ``vground``), each with a physical unit.

Every knob is off (or nominal) by default; the compiled description
(:mod:`.description`), the netlist and the fast solver (:mod:`.vground`)
all read the same values.

Transimpedance stage of each column (op-amp, feedback ``R_f || C_f``):

* ``opamp_gain``   open-loop gain A (V/V); nominal 1e6 (a precision op-amp, 120 dB); ``inf``: an exact
  virtual ground in the fast solver (the netlist then writes a gain of 1e12, whose ill-conditioning
  costs ngspice about 1e-6 V with input offsets).
  The internal output is ``e = clip(A (V_os - V_col), -opamp_rail, opamp_rail)``.
* ``opamp_rout``   output resistance (ohm) between ``e`` and the output node.
* ``opamp_rail``   output rails (V, symmetric); ``inf``: none.  Finite rails
  need a finite gain (a saturated ideal op-amp has no operating point).
* ``opamp_offset`` std (V) of the input offset ``V_os`` of each stage, drawn per die.
* ``opamp_gbw``    gain-bandwidth product (Hz) of a single-pole op-amp, ``A(s) = A / (1 + s A / (2 pi GBW))``;
  ``inf``: no pole.  Only transients see it: the operating points (and so the fast solver) are those
  of the DC gain.  :func:`closed_loop_poles` gives each stage's two poles.

Programmable devices:

* ``device_v0``    I-V nonlinearity (V): ``I = G V0 sinh(V / V0)``; ``inf``: linear.  The netlist writes
  the device as two antiparallel junctions (``n V_T = V0``, ``Is = G V0 / 2``): the same current while
  ``|V| <= 3 V0``; beyond, ngspice's reverse-bias form of a junction departs from Shockley's law by at
  most 0.0040 Is, a relative 5e-5 of the device's current.
* ``pelgrom_a``, ``device_area``: Pelgrom mismatch ``sigma = A_G / sqrt(W L)``
  (``pelgrom_a`` in um, i.e. relative spread times um; ``device_area`` W L in
  um^2); added in quadrature to ``Mismatch.g_dtod`` (same die draw z).
* ``gradient``     relative conductance change across a tile (a linear
  gradient in a die-drawn direction, per tile); ``field_std`` the relative std of a smooth
  random field over the tile coordinates, correlation length
  ``field_length`` (crosspoints); ``tile`` the tile size (rows = columns).
  Both are drawn per die and tile, in Python, and written as plain values.

Wires (:mod:`.wires`):

* ``wire_r_row``, ``wire_r_col``  resistance (ohm) of each segment of a tile's row and column wires between
  adjacent crosspoints (and from the row driver, and into the column's virtual-ground node); 0: ideal wires.
  With sinh devices the fast solver solves each tile's network per sample (small circuits; linear devices are
  reduced once per programming).

Temperature:

* ``temp``         die temperature (deg C); the programmable devices follow
  ``R(T) = R (1 + tc1 dT + tc2 dT^2)``, ``dT = temp - 27`` (ngspice's
  ``tnom``), ``tc1`` (1/K), ``tc2`` (1/K^2) (sinh devices: the same factor on
  G); the feedback resistors are temperature-stable precision parts (a common
  coefficient would cancel: the weight is the ratio R_f G).  The netlist writes
  ``.temp`` and each linear device's ``tc1``/``tc2``.

Node clamps (with ``compile_circuit(clamp=True)``):

* ``clamp_model``  ``"pwl"``: the ideal piecewise-linear limiter; ``"diode"``: two antiparallel diodes
  across the feedback path, each behind its bias source at a clamp level, obeying Shockley's law with
  series resistance (:func:`diode_branch`): ``diode_is`` saturation current Is (A), ``diode_n`` emission
  coefficient n, ``diode_rs`` series resistance Rs (ohm).  Temperature follows ngspice's diode model:
  ``V_T = k T / q`` and ``Is(T) = Is exp((T / T_nom - 1) EG / (n V_T) + XTI / n ln(T / T_nom))`` with
  :data:`DIODE_EG`, :data:`DIODE_XTI` (written in the netlist's ``.model`` card).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.optimize import brentq
from scipy.special import wrightomega

from ..errors import ConfigError
from .mismatch import tag

TNOM = 27.0
#: Boltzmann constant over the elementary charge (V/K), CODATA 2014 as in ngspice (the SI 2019 values differ by
#: 3.5e-7 relative: 0.2 uV on a diode at 0.5 V)
K_OVER_Q = 1.38064852e-23 / 1.6021766208e-19
ZERO_CELSIUS = 273.15
CLAMP_MODELS = ("pwl", "diode")
#: band gap (eV) and saturation-current temperature exponent of the clamp diodes (ngspice's defaults)
DIODE_EG, DIODE_XTI = 1.11, 3.0
#: exponent beyond which a diode without series resistance is continued linearly (as SPICE's limited exp)
_EXP_MAX = 80.0


@dataclass(frozen=True)
class Nonidealities:
    opamp_gain: float = 1e6
    opamp_rout: float = 0.0
    opamp_rail: float = math.inf
    opamp_offset: float = 0.0
    opamp_gbw: float = math.inf
    device_v0: float = math.inf
    pelgrom_a: float = 0.0
    device_area: float = 1.0
    gradient: float = 0.0
    field_std: float = 0.0
    field_length: float = 32.0
    tile: int = 256
    temp: float = TNOM
    tc1: float = 0.0
    tc2: float = 0.0
    clamp_model: str = "pwl"
    diode_is: float = 1e-14
    diode_n: float = 1.0
    diode_rs: float = 10.0
    wire_r_row: float = 0.0
    wire_r_col: float = 0.0

    def __post_init__(self):
        if self.clamp_model not in CLAMP_MODELS:
            raise ConfigError(f"non-ideality clamp_model must be one of {', '.join(CLAMP_MODELS)}, "
                              f"got {self.clamp_model!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "clamp_model" and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                                                   np.floating)) or math.isnan(v)):
                raise ConfigError(f"non-ideality {f.name} must be a number, got {v!r}")
        positive = ("opamp_gain", "opamp_rail", "opamp_gbw", "device_v0", "device_area", "field_length")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"non-ideality {name} must be > 0 (inf: off), got {getattr(self, name)}")
        for name in ("opamp_rout", "opamp_offset", "pelgrom_a", "gradient", "field_std", "diode_rs", "wire_r_row",
                     "wire_r_col"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"non-ideality {name} must be a finite number >= 0, got {v}")
        for name in ("diode_is", "diode_n"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"non-ideality {name} must be a finite number > 0, got {getattr(self, name)}")
        for name in ("temp", "tc1", "tc2"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"non-ideality {name} must be finite, got {getattr(self, name)}")
        if int(self.tile) != self.tile or self.tile < 1:
            raise ConfigError(f"non-ideality tile must be an integer >= 1 (crosspoints), got {self.tile}")
        if math.isfinite(self.opamp_rail) and not math.isfinite(self.opamp_gain):
            raise ConfigError(f"opamp_rail {self.opamp_rail} V needs a finite opamp_gain (an ideal op-amp "
                              "at its rail has no operating point)")
        if self.temp_factor <= 0:
            raise ConfigError(f"tc1 {self.tc1}, tc2 {self.tc2} at temp {self.temp} give a resistance <= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def temp_factor(self) -> float:
        """R(T) / R(tnom) of every programmable device."""
        d = self.temp - TNOM
        return 1.0 + self.tc1 * d + self.tc2 * d * d

    @property
    def kelvin(self) -> float:
        return self.temp + ZERO_CELSIUS

    @property
    def diode_nvt(self) -> float:
        """n V_T = n k T / q (V) of the clamp diodes at the die temperature."""
        return self.diode_n * K_OVER_Q * self.kelvin

    @property
    def diode_is_t(self) -> float:
        """Saturation current (A) at the die temperature (ngspice's law, EG and XTI as in the card)."""
        ratio = self.kelvin / (TNOM + ZERO_CELSIUS)
        return self.diode_is * math.exp((ratio - 1) * DIODE_EG / self.diode_nvt
                                        + DIODE_XTI / self.diode_n * math.log(ratio))

    @property
    def pelgrom_sigma(self) -> float:
        return self.pelgrom_a / math.sqrt(self.device_area)

    def log_spread(self, die: int, key: str, shape, g_dtod: float, z) -> np.ndarray:
        """log of the multiplicative spread of programmable array ``key``: random (z) plus spatial part."""
        sigma = math.hypot(g_dtod, self.pelgrom_sigma)
        out = sigma * z if sigma else np.zeros(shape)
        if (self.gradient or self.field_std) and len(shape) >= 1:
            out = out + self.spatial(die, key, shape)
        return out

    def spatial(self, die: int, key: str, shape) -> np.ndarray:
        """The correlated part over each tile's coordinates (crosspoints): a linear gradient and a smooth
        random field (unit-variance Gaussian field with squared-exponential correlation of length
        ``field_length``, as a sum of random Fourier features)."""
        rows, cols = (shape[0], 1) if len(shape) == 1 else shape
        t, m = int(self.tile), _FEATURES
        out = np.zeros((rows, cols))
        for ti in range(0, rows, t):
            for tj in range(0, cols, t):
                rng = np.random.default_rng([int(die), tag(key), 3, ti // t, tj // t])
                h, w = min(t, rows - ti), min(t, cols - tj)
                u = np.arange(h)[:, None] + 0.5
                v = np.arange(w)[None, :] + 0.5
                angle = rng.uniform(0, 2 * math.pi)
                part = self.gradient * (math.cos(angle) * (u / t - 0.5) + math.sin(angle) * (v / t - 0.5))
                omega = rng.standard_normal((m, 2)) / self.field_length
                phase = rng.uniform(0, 2 * math.pi, m)
                if self.field_std:
                    f = np.cos(omega[:, 0, None, None] * u + omega[:, 1, None, None] * v + phase[:, None, None])
                    part = part + self.field_std * math.sqrt(2.0 / m) * f.sum(0)
                out[ti:ti + h, tj:tj + w] = part
        return out.reshape(shape)


#: random Fourier features of the smooth random field
_FEATURES = 64


def diode_branch(v, i_s: float, nvt: float, rs: float):
    """Current of a diode with series resistance at terminal voltage ``v`` and its slope dI/dv.

    ``I = i_s (exp((v - I rs) / nvt) - 1)`` (Shockley), in closed form by Lambert's W,
    ``I = nvt / rs W(i_s rs / nvt exp((v + i_s rs) / nvt)) - i_s``, evaluated as Wright's omega of the
    logarithm (no overflow); ``dI/dv = W / (rs (1 + W))``.  Any consistent units (volts, and currents and
    resistances whose product is in volts).
    """
    v = np.asarray(v, float)
    if rs > 0:
        w = wrightomega(math.log(i_s * rs / nvt) + (v + i_s * rs) / nvt)
        return nvt / rs * w - i_s, w / (rs * (1 + w))
    a = v / nvt
    ex = np.exp(np.minimum(a, _EXP_MAX))
    return i_s * (ex * (1 + np.maximum(a - _EXP_MAX, 0.0)) - 1), i_s * ex / nvt


def closed_loop_poles(g_in, g_f, c_f, gain: float, gbw: float):
    """(slow, fast) poles (1/s, real and negative) of a transimpedance stage, linearised.

    The column sees ``g_in`` (S) to sources and the feedback ``g_f || c_f`` (S, F) to the output; the op-amp has
    DC gain ``gain`` and one pole, ``A(s) = gain / (1 + s / w_p)``, ``w_p = w_t / gain``, ``w_t = 2 pi gbw``
    (no rails, clamps or output resistance).  KCL at the column with ``V_out = -A(s) V_col`` gives, over
    ``gain``, ``(c_f / w_t) s^2 + ((g_in + g_f) / w_t + c_f (1 + 1 / gain)) s + (g_in + g_f) / gain + g_f = 0``
    (real roots: the discriminant is ``(c_f (1 + 1 / gain) - (g_in + g_f) / w_t)^2 + 4 c_f g_in / w_t``).
    ``gbw`` inf: the one pole of the DC gain and ``-inf``; a ``gbw`` far below ``(g_in + g_f) / (2 pi c_f)``
    gives a slow pole near ``-w_t g_f / (g_in + g_f)`` (the closed-loop bandwidth: GBW times the feedback
    factor).
    """
    g_in, g_f, c_f = np.broadcast_arrays(*(np.asarray(a, float) for a in (g_in, g_f, c_f)))
    inv_a = 1.0 / gain
    a0 = (g_in + g_f) * inv_a + g_f
    a1 = c_f * (1.0 + inv_a) + (g_in + g_f) / (2 * math.pi * gbw)
    if not math.isfinite(gbw):
        return -a0 / a1, np.full(a0.shape, -math.inf)
    a2 = c_f / (2 * math.pi * gbw)
    q = -0.5 * (a1 + np.sqrt(np.maximum(a1 * a1 - 4 * a2 * a0, 0.0)))
    return a0 / q, q / a2


def step_settling(slow: float, fast: float, band: float = 0.01) -> float:
    """Time (s) after which the step response of two real poles (no zero) from rest stays within ``band`` of
    its final value: ``|1 - y(t)| = (fast e^(slow t) - slow e^(fast t)) / (fast - slow)`` (monotone)."""
    if not math.isfinite(fast):
        return math.log(1 / band) / -slow
    if fast == slow:
        fast = slow * (1 + 1e-9)

    def dev(t):
        return (fast * math.exp(slow * t) - slow * math.exp(fast * t)) / (fast - slow) - band

    hi = math.log(1 / band) / -slow
    while dev(hi) > 0:
        hi *= 2
    return brentq(dev, 0.0, hi, xtol=1e-15, rtol=1e-12)
