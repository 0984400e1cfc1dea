"""Device mismatch and crossbar design knobs, and the seeded draws of a die.

Knob names follow IBM aihwkit's conventions: ``*_dtod`` is device-to-device
variation, drawn once per die seed and kept for the die's lifetime;
``*_std`` is cycle-to-cycle noise, drawn anew at every programming
(``write_noise_std``) or measurement (``read_noise_std``).

Every draw comes from ``numpy.random.default_rng([die, tag(key), ...])``
where ``tag`` is the CRC-32 of the device key: a device's value depends only
on the die seed, its key and the knob, never on the order in which devices
are compiled, so the same seed gives the same devices in every solver and
netlist.  Spreads multiply one fixed standard-normal draw per device, so a
larger knob scales the same die's deviations.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import ConfigError

#: Stream tags of the cycle-to-cycle draws (device keys use their CRC-32).
WRITE_TAG = 1
READ_TAG = 2


def numeric_fields(obj, what: str, accepted: str):
    """(name, value) of every field of dataclass ``obj``, each checked to be a real number (not a bool, not NaN)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or math.isnan(v):
            raise ConfigError(f"{what} {f.name} must be {accepted}, got {v!r}")
        yield f.name, v


@dataclass(frozen=True)
class Mismatch:
    """Spreads of the devices of one die (all zero: the nominal circuit).

    * ``g_dtod``   log-normal spread of every programmable conductance /
      transconductance / bias current and of the nudge resistors: the device
      realises ``exp(g_dtod * z) * programmed`` (z ~ N(0, 1), fixed per die).
    * ``gain_dtod`` log-normal spread of buffer and inverter gains.
    * ``offset_dtod`` std (volts) of buffer input offsets and inverter output offsets.
    * ``leak_dtod`` log-normal spread of leak conductances.
    * ``cap_dtod``  log-normal spread of capacitors (transients only).
    * ``write_noise_std`` std of the additive error of each programming of a
      programmable element, in the normalised conductance unit ``g_unit``;
      redrawn at every write.
    * ``read_noise_std`` std (volts) of the noise added to every voltage the
      driver measures; redrawn at every read.
    """

    g_dtod: float = 0.0
    gain_dtod: float = 0.0
    offset_dtod: float = 0.0
    leak_dtod: float = 0.0
    cap_dtod: float = 0.0
    write_noise_std: float = 0.0
    read_noise_std: float = 0.0

    def __post_init__(self):
        for name, v in numeric_fields(self, "mismatch knob", "a finite number >= 0"):
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"mismatch knob {name} must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_zero(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


@dataclass(frozen=True)
class CrossbarDesign:
    """Design constants of the resistive-crossbar level (normalised units).

    * ``g_min``, ``g_max``: conductance range of a programmable device.
    * ``w_max``: the largest |weight| the nominal mapping represents;
      one unit of weight is ``g_w = (g_max - g_min) / w_max`` of conductance
      difference ``Gp - Gn``.
    * ``resolution_bits``: programming resolution, ``2**bits`` evenly spaced
      levels from ``g_min`` to ``g_max`` (None: continuous).
    * ``leak``: nominal leak conductance of every neuron node.
    * ``v_rail``: the bias rails are at ``+v_rail`` and ``-v_rail`` volts.
    """

    g_min: float = 0.1
    g_max: float = 1.0
    w_max: float = 2.0
    resolution_bits: int | None = None
    leak: float = 1.0
    v_rail: float = 1.0

    def __post_init__(self):
        for name in ("g_min", "g_max", "w_max", "leak", "v_rail"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ConfigError(f"crossbar knob {name} must be a finite number, got {v!r}")
        if self.g_min < 0:
            raise ConfigError(f"crossbar knob g_min must be >= 0, got {self.g_min}")
        if self.g_max <= self.g_min:
            raise ConfigError(f"crossbar knob g_max ({self.g_max}) must exceed g_min ({self.g_min})")
        for name in ("w_max", "leak", "v_rail"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"crossbar knob {name} must be > 0, got {getattr(self, name)}")
        b = self.resolution_bits
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= 32):
            raise ConfigError(f"crossbar knob resolution_bits must be an integer in 1..32 (or none), got {b!r}")

    @property
    def g_center(self) -> float:
        return 0.5 * (self.g_min + self.g_max)

    @property
    def g_w(self) -> float:
        """Conductance difference Gp - Gn of one unit of weight."""
        return (self.g_max - self.g_min) / self.w_max

    def to_dict(self) -> dict:
        return asdict(self)

    def quantise(self, g):
        """Clip to [g_min, g_max] and round to the nearest programmable level."""
        g = np.clip(g, self.g_min, self.g_max)
        if self.resolution_bits is None:
            return g
        step = (self.g_max - self.g_min) / (2 ** self.resolution_bits - 1)
        return np.clip(self.g_min + np.round((g - self.g_min) / step) * step, self.g_min, self.g_max)


def tag(key: str) -> int:
    """Stable stream tag of a device key."""
    return zlib.crc32(key.encode())


def standard_normal(die: int, key: str, shape) -> np.ndarray:
    """The fixed N(0, 1) draws of device array `key` on die `die`."""
    return np.random.default_rng([int(die), tag(key)]).standard_normal(shape)


def write_noise(die: int, write: int, keys_shapes, std: float) -> dict:
    """Additive programming errors of write number `write` (zeros when std is 0)."""
    if std == 0:
        return {k: np.zeros(s) for k, s in keys_shapes}
    rng = np.random.default_rng([int(die), WRITE_TAG, int(write)])
    return {k: std * rng.standard_normal(s) for k, s in keys_shapes}


def read_rng(die: int) -> np.random.Generator:
    """Generator of a driver's read noise (one per die, advanced by every read)."""
    return np.random.default_rng([int(die), READ_TAG])
