"""Instrument drivers of a learning bench, declared with :mod:`analogprop.bench.scpi`.

* :class:`VoltageSource` - a multi-channel SCPI voltage source; block writes
  ``SOUR:VOLT v1,v2,...,(@1:64)``, per-channel safe limits checked before sending.
* :class:`ScannerDMM` - a DMM with a scanner card: ``MEAS:VOLT:DC? (@101:142)``
  returns ``SAMP:COUN`` sweeps of the channel list in one reply.
* :class:`SMU` - a Keithley-2450-style source-measure unit: command set check
  (``*LANG?``), source function, source voltage, current limit, limit-tripped query.
* :class:`Board` - the learning board's line protocol: ``PROG addr,c1,c2,...``
  programs device codes from ``addr`` on (at most :data:`PROG_CODES` per line),
  ``PROG? addr,n`` reads them back,
  ``CRC? addr,n`` is the CRC-32 of n codes, ``NUDG code`` / ``NUDG:STAT 0|1`` set
  and switch the nudge conductance.

Every instrument's ``safe_shutdown`` ramps its outputs to zero, turns them off
and reads back that they are.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .scpi import (Instrument, InstrumentError, SetpointError, boolean, channel_list, control, measurement,
                   strict_discrete_set, strict_range)

PROG_CODES = 1024  # codes per PROG line: a whole block of a large board would overrun an input buffer


def strict_int_range(value, limits):
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{value!r} is not an integer")
    v = int(value)
    if not (limits[0] <= v <= limits[1]):
        raise ValueError(f"{v} is outside [{limits[0]}, {limits[1]}]")
    return v


def _ramp(start: np.ndarray, step: float):
    """Setpoint lists going from ``start`` to zero in steps of at most ``step`` volts."""
    n = max(1, int(math.ceil(float(np.max(np.abs(start), initial=0.0)) / step)))
    for i in range(n - 1, -1, -1):
        yield start * (i / n)


class VoltageSource(Instrument):
    """Multi-channel voltage source; a channel without configured limits only accepts 0 V."""

    output_enabled = control("OUTP?", "OUTP {:d}", "output: on/off", boolean, cast=lambda s: bool(int(s)))

    def __init__(self, *args, ramp_step_v: float = 0.25, ramp_dwell_s: float = 0.001, **kw):
        super().__init__(*args, **kw)
        self.limits: dict[int, tuple[float, float]] = {}
        self.ramp_step_v, self.ramp_dwell_s = ramp_step_v, ramp_dwell_s

    def set_limits(self, first: int, last: int, limits: tuple[float, float]) -> None:
        for ch in range(first, last + 1):
            self.limits[ch] = limits

    def check(self, first: int, values) -> np.ndarray:
        """Refuse (SetpointError) any value outside its channel's limits, before sending."""
        v = np.asarray(values, dtype=float).ravel()
        for i, x in enumerate(v):
            lo, hi = self.limits.get(first + i, (0.0, 0.0))
            if not (lo <= x <= hi):
                raise SetpointError(f"{self.name}: channel {first + i}: setpoint {float(x)!r} V is outside the safe "
                                    f"limits [{lo}, {hi}] V; not sent")
        return v

    def set_voltages(self, blocks, synced: bool = False) -> None:
        """Write several blocks ``(first_channel, values)`` in one message (``synced``: wait for ``*OPC?``)."""
        parts = []
        for first, values in blocks:
            v = self.check(first, values)
            parts.append("SOUR:VOLT " + ",".join(f"{x:.6g}" for x in v) + "," + channel_list(first, first + v.size - 1))
        (self.write_synced if synced else self.write)(";:".join(parts))

    def voltages(self, first: int, last: int) -> np.ndarray:
        reply = self.query(f"SOUR:VOLT? {channel_list(first, last)}")
        return np.array(self.parse_floats(reply, last - first + 1, "SOUR:VOLT?"))

    def set_current_limit(self, first: int, last: int, amps: float) -> None:
        try:
            a = strict_range(amps, (1e-9, 10.0))
        except ValueError as e:
            raise SetpointError(f"{self.name}: current limit: {e}; not sent") from None
        self.write(f"SOUR:CURR:LIM {a:.6g},{channel_list(first, last)}")

    def safe_shutdown(self) -> None:
        """Ramp every configured channel to 0 V in steps of ``ramp_step_v``, then output off."""
        if self.limits:
            first, last = min(self.limits), max(self.limits)
            present = self.voltages(first, last)
            for v in _ramp(present, self.ramp_step_v):
                self.write("SOUR:VOLT " + ",".join(f"{x:.6g}" for x in v) + "," + channel_list(first, last))
                time.sleep(self.ramp_dwell_s)
        self.output_enabled = 0
        if self.output_enabled:
            raise InstrumentError(f"instrument {self.name!r}: output still on after OUTP 0")


class ScannerDMM(Instrument):
    """DMM with a scanner: one query returns every channel of the list, ``sample_count`` times."""

    sample_count = control("SAMP:COUN?", "SAMP:COUN {:d}", "sample count: sweeps per read",
                           strict_int_range, values=(1, 1000), cast=int)

    def measure(self, first: int, last: int, repeats: int = 1) -> np.ndarray:
        """Mean over ``repeats`` sweeps of channels first..last (volts)."""
        n = last - first + 1
        reply = self.query(f"MEAS:VOLT:DC? {channel_list(first, last)}")
        values = self.parse_floats(reply, n * repeats, "MEAS:VOLT:DC?")
        return np.asarray(values).reshape(repeats, n).mean(axis=0)


class SMU(Instrument):
    """Keithley-2450-style SMU sourcing a voltage with a current limit.

    A 2450 speaks one of three command sets (``*LANG``: SCPI, SCPI2400, TSP),
    kept in nonvolatile memory and changed only by a reboot; this driver
    speaks its SCPI set and refuses the others on connect.  The 2450 keeps
    separate settings per source function, so the voltage function is
    selected (``:SOUR:FUNC VOLT``) before its limit and level are set.
    """

    source_function = control(":SOUR:FUNC?", ":SOUR:FUNC {}", "source function: VOLT or CURR", strict_discrete_set,
                              values=("VOLT", "CURR"), cast=str)
    source_voltage = control(":SOUR:VOLT?", ":SOUR:VOLT {:.6f}", "source voltage: volts", strict_range,
                             values=lambda self: self.voltage_limits)
    current_limit = control(":SOUR:VOLT:ILIM?", ":SOUR:VOLT:ILIM {:.9f}", "current limit: amps", strict_range,
                            values=(1e-9, 1.05))
    output_enabled = control(":OUTP?", ":OUTP {:d}", "output: on/off", boolean, cast=lambda s: bool(int(s)))
    limit_tripped = measurement(":SOUR:VOLT:ILIM:TRIP?", "whether the current limit is active",
                                cast=lambda s: bool(int(s)))
    current = measurement(":MEAS:CURR?", "measured current: amps")

    def __init__(self, *args, voltage_limits=(0.0, 0.0), ramp_step_v: float = 0.25, ramp_dwell_s: float = 0.001, **kw):
        super().__init__(*args, **kw)
        self.voltage_limits = voltage_limits
        self.ramp_step_v, self.ramp_dwell_s = ramp_step_v, ramp_dwell_s

    def check_language(self) -> None:
        language = self.query("*LANG?").strip().upper()
        if language != "SCPI":
            raise InstrumentError(
                f"instrument {self.name!r} at {self.resource} uses the {language[:20]!r} command set (*LANG?); "
                f"switch it to SCPI (front panel: MENU > System > Settings > Command Set, or send *LANG SCPI) "
                f"and reboot it")

    def source_volts(self, volts: float, current_limit: float) -> None:
        """Source ``volts`` with ``current_limit``: voltage function first, then its limit and level."""
        self.source_function = "VOLT"
        self.current_limit = current_limit
        self.source_voltage = volts

    def safe_shutdown(self) -> None:
        present = np.array([self.source_voltage])
        for v in _ramp(present, self.ramp_step_v):
            self.write(f":SOUR:VOLT {float(v[0]):.6f}")
            time.sleep(self.ramp_dwell_s)
        self.output_enabled = 0
        if self.output_enabled or self.source_voltage != 0:
            raise InstrumentError(f"instrument {self.name!r}: output not at 0 V and off after the ramp")


class Board(Instrument):
    """The learning board: programmable device codes and the nudge switch."""

    nudge_code = control("NUDG?", "NUDG {:d}", "nudge code", strict_int_range,
                         values=lambda self: self.nudge_codes, cast=int)
    nudge_enabled = control("NUDG:STAT?", "NUDG:STAT {:d}", "nudge switch: on/off", boolean,
                            cast=lambda s: bool(int(s)))

    def __init__(self, *args, codes=(0, 0), nudge_codes=(0, 0), address_count: int = 0, **kw):
        super().__init__(*args, **kw)
        self.codes, self.nudge_codes, self.address_count = codes, nudge_codes, address_count

    def switch_nudge(self, on: bool) -> None:
        """Switch the nudge conductance in or out; returns once the board has done it."""
        self.write_synced(f"NUDG:STAT {int(bool(on))}")

    def program(self, address: int, codes) -> None:
        """Write absolute codes from ``address`` on (idempotent: repeating it changes nothing)."""
        c = np.asarray(codes).ravel()
        if c.size == 0:
            return
        if not np.issubdtype(c.dtype, np.integer):
            raise SetpointError(f"{self.name}: device codes must be integers, got {c.dtype}; not sent")
        lo, hi = self.codes
        if c.min() < lo or c.max() > hi:
            bad = int(np.flatnonzero((c < lo) | (c > hi))[0])
            raise SetpointError(f"{self.name}: address {address + bad}: code {int(c[bad])} is outside [{lo}, {hi}]; not sent")
        if address < 0 or address + c.size > self.address_count:
            raise SetpointError(f"{self.name}: addresses {address}..{address + c.size - 1} are outside "
                                f"0..{self.address_count - 1}; not sent")
        for i in range(0, c.size, PROG_CODES):
            self.write(f"PROG {address + i}," + ",".join(map(str, c[i:i + PROG_CODES].tolist())))

    def read_codes(self, address: int, count: int) -> np.ndarray:
        reply = self.query(f"PROG? {address},{count}")
        return np.array(self.parse_floats(reply, count, "PROG?"), dtype=np.int64)

    def checksum(self, address: int, count: int) -> int:
        """CRC-32 of ``count`` codes from ``address`` on (see :func:`codes_crc`)."""
        return self.parse(self.query(f"CRC? {address},{count}"), int, "CRC?")

    def safe_shutdown(self) -> None:
        self.switch_nudge(False)


def codes_crc(codes: np.ndarray) -> int:
    """The board's checksum of its code memory."""
    import zlib

    return zlib.crc32(np.asarray(codes, dtype="<u4").tobytes())
