"""The VISA driver: trains a learning board on the bench through its instruments.

Weights are device codes: ``w = w_lo + (code - code_lo) * lsb`` over the
profile's weight range, quantised and clipped.  The host keeps the exact
(unquantised) weights, adds every update to them once, and programs the
absolute codes they round to; programming is therefore idempotent and is
verified per block with ``CRC? addr,n``.  A timeout, dropped connection,
queued SCPI error or a reply that does not answer its query (malformed, wrong
count, another query's reply) makes the driver reconnect, reconfigure,
re-verify the codes and repeat the interrupted operation (a phase's
measurements or a programming pass), so an update is never lost nor applied
twice.  A fresh session is also how the driver resynchronises: every phase
ends with an error-queue query on each instrument, whose quoted
``code,"text"`` reply no data reply matches, so a stray line (a late or
repeated reply) that shifted the replies of a phase is caught within it.

Per sample, the free phase costs two round-trips (source block write
with ``*OPC?``, scanner query), the nudged phase four (source block write,
nudge in, scan, nudge out, each confirmed); per batch each phase adds one
``SYST:ERR?`` per instrument and one limit-trip query, and a weight update
one ``PROG`` write per 1024 codes and one ``CRC?`` query per changed
parameter block (counted in :attr:`VisaDriver.traffic`).

With ``settle_check_ms`` in the profile's ``[timing]``, every sample is
scanned a second time that much later: the largest change of a state
between the two scans is the phase's residual, and a sample that moved more
than ``settle_tol_v`` is reported unconverged (one more round-trip per
sample and phase).  Without it the bench cannot tell, and every sample is
reported converged with a NaN residual.

``local_update`` uses only measured voltages: the applied inputs and the
scanned neuron states of both phases, ``r_j = rho(measured h_j)`` (Eq. 56).
"""
from __future__ import annotations

import atexit
import sys
import time
from contextlib import contextmanager
import numpy as np
import pyvisa

from ..bench.instruments import SMU, Board, ScannerDMM, VoltageSource, codes_crc
from ..bench.profile import Profile, load_profile
from ..bench.scpi import ConnectionLost, InstrumentError, ReplyError, SCPIErrorQueued, SetpointError
from ..errors import ConfigError, check_finite
from ..model.gradients import presynaptic_rates
from ..model.network import Network, pair_of
from .base import Driver, Phase

RECOVERABLE = (ConnectionLost, SCPIErrorQueued, ReplyError)


def quantise(w, conductances) -> np.ndarray:
    """Device codes realising weights ``w`` (rounded, clipped to the code range)."""
    c = conductances
    return np.clip(np.rint((np.asarray(w) - c.weight_range[0]) / c.lsb) + c.codes[0], *c.codes).astype(np.int64)


class VisaDriver(Driver):
    """A board of the bench ``profile`` realising ``network`` (its initial weights)."""

    def __init__(self, profile: Profile, network: Network, backend: str = "@py", log=None):
        if network.readout != "dynamic":
            raise ConfigError(f"readout {network.readout!r} needs the ideal driver: the visa driver's output is a dynamic layer of the board (use readout dynamic)")
        if tuple(network.sizes) != tuple(profile.sizes):
            raise ConfigError(f"network {'-'.join(map(str, network.sizes))} does not match the board of bench "
                              f"profile {profile.path} ({'-'.join(map(str, profile.sizes))})")
        if network.tied:
            raise ConfigError("the VISA driver programs forward and feedback devices independently; tied weights are not supported")
        shapes = profile.parameter_shapes()
        if set(shapes) != set(network.params):
            raise ConfigError(f"bench profile {profile.path} holds parameter blocks {sorted(shapes)} but the network "
                              f"has {sorted(network.params)} (use --no-bias if the board has no bias devices)")
        network.validate()
        self.profile, self.sizes = profile, tuple(profile.sizes)
        self.log = log or (lambda msg: print(f"visa: {msg}", file=sys.stderr))
        self.weights = {}
        self.codes = {}
        self.events: list[str] = []
        self.traffic = {p: {"writes": 0, "queries": 0, "samples": 0, "calls": 0, "seconds": 0.0}
                        for p in ("free", "nudged", "program")}
        self._nudge_code = None
        self._closed = False
        self._safe = True  # outputs known to be off (nothing switched on yet, or shut down)
        try:
            self.rm = pyvisa.ResourceManager(backend)
        except (OSError, ValueError, pyvisa.Error) as e:
            raise InstrumentError(f"VISA backend {backend!r} is not available ({e})") from None
        self.inst = {}
        p = profile
        for name, spec in p.instruments.items():
            args = (name, spec.resource, spec.idn, spec.timeout_ms, self.rm)
            if spec.kind == "voltage_source":
                i = VoltageSource(*args, ramp_step_v=p.ramp_step_v, ramp_dwell_s=p.ramp_dwell_s)
            elif spec.kind == "smu":
                i = SMU(*args, voltage_limits=p.supply_limits, ramp_step_v=p.ramp_step_v, ramp_dwell_s=p.ramp_dwell_s)
            elif spec.kind == "board":
                i = Board(*args, codes=p.conductances.codes, nudge_codes=p.nudge_codes,
                          address_count=p.conductances.address_count)
            else:
                i = ScannerDMM(*args)
            self.inst[name] = i
        for block in (p.inputs, p.targets):
            self.inst[block.instrument].set_limits(*block.channels, block.limits)
        atexit.register(self.close)
        self._set_weights(network.params)
        try:
            with self._count("program", 0):
                self._robust("connect", lambda: None, connect_first=True)
        except BaseException:
            self.close()
            raise

    # -- connection and configuration -------------------------------------------
    def _connect(self) -> None:
        """Open (and check) every session, then configure (supply and sources on) and check errors."""
        p = self.profile
        for i in self.inst.values():
            i.connect()
        self._safe = False
        for i in self.inst.values():
            i.write("*CLS")
            stale = i.drain_errors()
            if stale:
                self._event(f"{i.name}: cleared stale errors {stale}")
        smu = self.inst[p.supply_instrument]
        smu.source_volts(p.supply_voltage, p.supply_current_limit_a)
        smu.output_enabled = 1
        for block in (p.inputs, p.targets):
            src = self.inst[block.instrument]
            src.set_current_limit(*block.channels, block.compliance_a)
            src.set_voltages([(block.channels[0], np.zeros(block.count))])
        for name in {p.inputs.instrument, p.targets.instrument}:
            self.inst[name].output_enabled = 1
        self.inst[p.states_instrument].sample_count = p.repeats
        board = self.inst[p.nudge_instrument]
        board.nudge_enabled = 0
        self._nudge_code = None
        self._check_health()

    def _check_health(self) -> None:
        for i in self.inst.values():
            i.check_errors()
        smu = self.inst[self.profile.supply_instrument]
        if smu.limit_tripped:
            raise InstrumentError(f"instrument {smu.name!r}: the board supply hit its current limit "
                                  f"({self.profile.supply_current_limit_a} A)")

    def _event(self, msg: str) -> None:
        self.events.append(msg)
        self.log(msg)

    def _robust(self, what: str, fn, connect_first: bool = False):
        """Run ``fn``; on a recoverable fault reconnect, re-verify the codes and run it again (bounded)."""
        attempts = self.profile.reconnect_attempts
        last = None
        for attempt in range(attempts + 1):
            try:
                if attempt or connect_first:
                    if attempt:
                        time.sleep(self.profile.reconnect_backoff_s * 2 ** (attempt - 1))
                    self._connect()
                    self._verify_codes()
                return fn()
            except RECOVERABLE as e:
                last = e
                if attempt < attempts:
                    self._event(f"{what}: {e}; reconnecting (attempt {attempt + 1} of {attempts})")
            except InstrumentError as e:  # not curable by reconnecting: safe state, then report
                self._fail(f"{what}: {e}")
        self._fail(f"{what}: gave up after {attempts} reconnect attempts: {last}")

    def _fail(self, message: str):
        if self._safe:
            raise InstrumentError(f"{message}; nothing was switched on")
        problems = self._shutdown()
        self._safe = not problems
        state = ("outputs ramped to zero and off" if not problems
                 else f"outputs NOT confirmed safe ({'; '.join(problems)})")
        raise InstrumentError(f"{message}; {state}")

    # -- weights and codes ---------------------------------------------------------
    def _set_weights(self, params) -> None:
        c = self.profile.conductances
        shapes = self.profile.parameter_shapes()
        new = {}
        for name, shape in shapes.items():
            if name not in params:
                raise ConfigError(f"parameter {name} missing (the board holds {sorted(shapes)})")
            w = np.array(params[name], dtype=float)
            if w.shape != shape:
                raise ConfigError(f"parameter {name} has shape {w.shape}, the board's block is {shape}")
            check_finite(f"parameter {name}", w)
            new[name] = np.clip(w, *c.weight_range)
        self.weights = new
        self.codes = {k: self.quantise(v) for k, v in new.items()}

    def quantise(self, w) -> np.ndarray:
        return quantise(w, self.profile.conductances)

    def weights_of(self, codes) -> np.ndarray:
        c = self.profile.conductances
        return c.weight_range[0] + (np.asarray(codes) - c.codes[0]) * c.lsb

    def _crc_mismatch(self) -> list[str]:
        """Blocks whose checksum on the board differs from the host's codes (one query each)."""
        board = self.inst[self.profile.conductances.instrument]
        base = self.profile.conductances.base
        return [name for name, codes in self.codes.items()
                if board.checksum(base[name], codes.size) != codes_crc(codes)]

    def _program(self, names) -> None:
        board = self.inst[self.profile.conductances.instrument]
        for name in names:
            board.program(self.profile.conductances.base[name], self.codes[name])
        bad = self._crc_mismatch()
        if bad:
            raise SCPIErrorQueued(board.name, [(0, f"code readback mismatch in {bad}")])

    def _verify_codes(self) -> None:
        """After a reconnect: reprogram blocks whose codes differ from the host's."""
        bad = self._crc_mismatch()
        if bad:
            self.events.append(f"device codes of {bad} differ from the host's; programming them")
            self._program(bad)

    # -- Driver interface -------------------------------------------------------------
    def get_parameters(self):
        return {k: v.copy() for k, v in self.weights.items()}

    def set_parameters(self, params):
        self._set_weights(params)

        def program():
            with self._count("program", 0):
                self._program(list(self.codes))

        self._robust("program", program)

    def update_parameters(self, delta, decay=None):
        """Decay and move the host weights once, then program the codes they round to."""
        for k, d in delta.items():
            if k not in self.weights:
                raise ConfigError(f"update for unknown parameter {k}")
            check_finite(f"update of {k}", d)
        old = self.codes
        decay = decay or {}
        self._set_weights({k: self.weights[k] * decay.get(k, 1.0) + delta.get(k, 0.0) for k in self.weights})
        changed = [k for k in self.codes if not np.array_equal(self.codes[k], old[k])]

        def program():
            with self._count("program", 0):
                self._program(changed)

        if changed:
            self._robust("program", program)

    def effective_weights(self):
        """The weights the programmed codes realise (device mismatch is not known to the host)."""
        return {k: self.weights_of(c) for k, c in self.codes.items()}

    def parameter_groups(self):
        return {name: pair_of(name) for name in self.weights}

    def relax_free(self, x):
        x = self._check_inputs(x)
        return self._robust("free phase", lambda: self._phase(x, None, "free"))

    def relax_nudged(self, x, y, beta, start):
        """Per sample: apply x and y, settle freely, switch the nudge in, settle, scan.

        The free settling before the nudge is the physical form of starting
        from ``start`` (the free fixed point of the same inputs).
        """
        x = self._check_inputs(x)
        p = self.profile
        if not (np.isfinite(beta) and 0 < beta <= p.nudge_beta_max):
            raise ConfigError(f"beta {beta} cannot be realised by the bench's nudge conductance "
                              f"(0 < beta <= {p.nudge_beta_max}); symmetric or random-sign nudging needs a "
                              f"negative beta, which a resistive nudge cannot apply")
        y = np.asarray(y, dtype=float)
        if y.shape != (x.shape[0], self.sizes[-1]):
            raise ConfigError(f"targets have shape {y.shape}, expected {(x.shape[0], self.sizes[-1])}")
        self._check_block(p.targets, y, "target")
        code = int(round(beta / p.nudge_beta_max * p.nudge_codes[1]))
        if code < 1:
            raise ConfigError(f"beta {beta} is below the nudge's resolution {p.nudge_beta_max / p.nudge_codes[1]}")
        return self._robust("nudged phase", lambda: self._phase(x, y, "nudged", code))

    def local_update(self, x, free, nudged, centered=False):
        """Eq. 56 from measurements: rho(x), rho(h0) and h_beta - h0 as read by the scanner."""
        r = presynaptic_rates(free.probes.get("inputs", x), free.states, centered)
        dh = [b - a for a, b in zip(free.states, nudged.states)]
        return Network(self.sizes, self.weights).hebbian(r, dh)

    # -- measurements --------------------------------------------------------------------
    def _check_block(self, block, values, what):
        lo, hi = block.limits
        bad = ~((values >= lo) & (values <= hi))
        if bad.any():
            s, j = np.argwhere(bad)[0]
            raise SetpointError(f"{what} {j} of sample {s} is {float(values[s, j])!r} V, outside the safe limits "
                                f"[{lo}, {hi}] V of channel {block.channels[0] + j} ({self.profile.path}); "
                                f"nothing was sent")

    def _check_inputs(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ConfigError(f"inputs have shape {x.shape}; the board expects (n, {self.sizes[0]})")
        check_finite("inputs", x)
        self._check_block(self.profile.inputs, x, "input")
        return x

    @contextmanager
    def _count(self, phase, samples):
        """Add the writes, queries and time of the block to ``traffic[phase]`` (samples if it succeeds)."""
        t = self.traffic[phase]
        w0 = sum(i.writes for i in self.inst.values())
        q0 = sum(i.queries for i in self.inst.values())
        t0 = time.perf_counter()
        try:
            yield
            t["samples"] += samples
            t["calls"] += 1
        finally:
            t["seconds"] += time.perf_counter() - t0
            t["writes"] += sum(i.writes for i in self.inst.values()) - w0
            t["queries"] += sum(i.queries for i in self.inst.values()) - q0

    def _phase(self, x, y, phase, nudge_code=None) -> Phase:
        """Measure the states of every sample: apply, (nudge,) settle, scan."""
        p = self.profile
        board, dmm = self.inst[p.nudge_instrument], self.inst[p.states_instrument]
        n = x.shape[0]
        out = np.empty((n, sum(self.sizes[1:])))
        moved = np.full(n, np.nan)
        with self._count(phase, n):
            if y is not None and nudge_code != self._nudge_code:
                board.nudge_code = nudge_code
                self._nudge_code = nudge_code
            for s in range(n):
                writes = {}
                writes.setdefault(p.inputs.instrument, []).append((p.inputs.channels[0], x[s]))
                if y is not None:
                    writes.setdefault(p.targets.instrument, []).append((p.targets.channels[0], y[s]))
                for name, blocks in writes.items():
                    self.inst[name].set_voltages(blocks, synced=True)
                time.sleep(p.settle_free_s)
                if y is not None:
                    board.switch_nudge(True)
                    time.sleep(p.settle_nudged_s)
                out[s] = dmm.measure(*p.states_channels, p.repeats)
                if p.settle_check_s:
                    time.sleep(p.settle_check_s)
                    later = dmm.measure(*p.states_channels, p.repeats)
                    moved[s] = np.max(np.abs(later - out[s]))
                    out[s] = later
                if y is not None:
                    board.switch_nudge(False)
            self._check_health()
        states = np.split(out, np.cumsum(self.sizes[1:-1]), axis=1)
        converged = moved <= p.settle_tol_v if p.settle_check_s else np.ones(n, dtype=bool)
        return Phase(states, residual=moved, steps=np.zeros(n, dtype=np.int64),
                     converged=converged, probes={"inputs": x.copy()})

    # -- safe state ---------------------------------------------------------------------------
    def _shutdown(self) -> list[str]:
        """Nudge off, sources and supply ramped to zero and off; returns what could not be done."""
        problems = []
        order = sorted(self.inst.values(), key=lambda i: ["board", "voltage_source", "dmm_scanner", "smu"]
                       .index(self.profile.instruments[i.name].kind))
        for i in order:
            for attempt in range(2):
                try:
                    if attempt or not i.connected:
                        i.connect()
                    i.safe_shutdown()
                    break
                except (InstrumentError, SetpointError) as e:
                    if attempt:
                        problems.append(f"{i.name}: {e}")
        return problems

    def close(self) -> None:
        """Put every output in its safe state and close the sessions (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        problems = [] if self._safe else self._shutdown()
        self._safe = not problems
        for i in self.inst.values():
            i.disconnect()
        try:
            self.rm.close()
        except Exception:  # noqa: BLE001 - closing an already broken backend
            pass
        if problems:
            self.log("WARNING: outputs could not be confirmed safe: " + "; ".join(problems))


def make_visa_driver(network: Network, profile, backend: str = "@py") -> VisaDriver:
    """The ``visa`` driver of a run: ``network`` programmed on the bench of the ``profile`` TOML, over the
    pyvisa ``backend``."""
    if not profile:
        raise ConfigError("--driver visa needs --profile PATH (a bench profile, see instruments/)")
    return VisaDriver(load_profile(profile), network, backend=backend)
