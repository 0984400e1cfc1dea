"""Bench emulator: SCPI servers on 127.0.0.1 for every instrument of a profile.

Each instrument of the profile gets its own TCP server (a raw SOCKET
resource, ``\\n``-terminated lines, ``;`` separating commands) speaking the
dialect of :mod:`analogprop.bench.instruments`.  Behind them sits one
simulated board (:class:`BoardPhysics`): the network realised by the device
codes, each device's weight scaled by its own log-normal gain (mismatch),
relaxed to its fixed point (Eq. 13-15, nudge conductance beta to the target
voltage) by the sweeps of :class:`analogprop.model.relax.FastSolver`, approached exponentially
with the profile's time constant, read with Gaussian noise at the DMM's
resolution.  With ``physics = "circuit"`` the board is instead a compiled
circuit of :mod:`analogprop.circuit` (:class:`CircuitPhysics`).

Like a real instrument's input buffer and error queue, both are bounded: a
line is executed only once its terminator has arrived (a client leaving
mid-line executes nothing); a line longer than :data:`MAX_LINE` bytes queues
``-223,"Too much data"`` and is discarded up to its terminator without being
buffered; the error queue holds :data:`ERROR_QUEUE_DEPTH` entries, the last
becoming ``-350,"Queue overflow"`` when more arrive.  Each server serves at
most ``max_clients`` sessions at a time and closes any further connection at
once.  The SMU answers ``*LANG?`` with the profile's ``smu_language``; outside
SCPI it executes only common (``*``) commands, and it powers the board only
with its source function set to voltage (``:SOUR:FUNC VOLT``).

Faults are injected with :meth:`BenchEmulator.inject` or the ``EMUL:FAULT``
command; each fires once, at the next command of that instrument starting
with ``match``:

* ``drop`` - close the connection without executing the command;
* ``drop_after`` - execute it, then close without replying;
* ``delay`` - execute it and reply ``arg`` seconds late (beyond the timeout);
* ``error`` - queue a SCPI error (``arg`` = ``code,"text"``, default ``-350,"Queue overflow"``);
* ``range`` - refuse the setpoint as out of range (``-222``), not applying it;
* ``malformed`` - execute it and reply ``arg`` (default ``ERROR``) instead of its reply;
* ``wrong`` - execute it and reply what the query ``arg`` (default ``*IDN?``) replies;
* ``extra`` - execute it, reply, then send the unsolicited line ``arg`` (default: the reply
  again, ``1`` after a command without one);
* ``stuck`` - channel ``arg`` stops following: it holds its value and every
  command touching it queues ``-240,"Hardware error; channel N stuck"`` (permanent).

Fault arguments are checked when the fault is armed (:func:`check_fault`).
"""
from __future__ import annotations

import math
import re
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..model.network import Network
from ..model.dynamics import rho
from .instruments import codes_crc
from .profile import Profile

MAX_CLIENTS = 4           # sessions an emulated instrument serves at a time (the driver opens one)
FAULT_KINDS = ("drop", "drop_after", "delay", "error", "range", "malformed", "wrong", "extra", "stuck")
MAX_LINE = 65536          # bytes of one input line, terminator excluded
ERROR_QUEUE_DEPTH = 10    # entries of each instrument's SCPI error queue
SOURCE_RANGE_V = (-12.0, 12.0)
SMU_RANGE_V = (0.0, 21.0)
_CHANNELS = re.compile(r"\(@(\d+)(?::(\d+))?\)\s*$")


class CommandError(Exception):
    """A SCPI error to queue: (code, message)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _channels(arg: str):
    m = _CHANNELS.search(arg)
    if not m:
        raise CommandError(-104, "Data type error; expected a channel list (@a:b)")
    a = int(m.group(1))
    b = int(m.group(2) or a)
    if b < a:
        raise CommandError(-222, "Data out of range; empty channel list")
    return a, b, arg[:m.start()].rstrip().rstrip(",")


def _numbers(text: str, cast=float):
    try:
        return [cast(v) for v in text.split(",")] if text.strip() else []
    except ValueError:
        raise CommandError(-104, f"Data type error; {text[:30]!r}") from None


class BoardPhysics:
    """The simulated board: device codes -> weights (with mismatch) -> fixed points."""

    def __init__(self, profile: Profile):
        self.profile = profile
        emu, cond = profile.emulation, profile.conductances
        rng = np.random.default_rng(emu.seed)
        self.shapes = profile.parameter_shapes()
        self.gains = {p: np.exp(emu.mismatch * rng.standard_normal(s)) for p, s in self.shapes.items()}
        zero = cond.codes[0] + round(-cond.weight_range[0] / cond.lsb)
        self.codes = np.full(cond.address_count, int(np.clip(zero, *cond.codes)), dtype=np.int64)
        self._net = None

    def codes_changed(self) -> None:
        self._net = None

    def programmed_weights(self) -> dict[str, np.ndarray]:
        """The weights the codes stand for (nominal, before device spread)."""
        cond = self.profile.conductances
        out = {}
        for p, shape in self.shapes.items():
            n = int(np.prod(shape))
            c = self.codes[cond.base[p]:cond.base[p] + n].reshape(shape)
            out[p] = cond.weight_range[0] + (c - cond.codes[0]) * cond.lsb
        return out

    def network(self) -> Network:
        """The network the codes realise, each device weight times its gain."""
        if self._net is None:
            w = self.programmed_weights()
            self._net = Network(self.profile.sizes, {p: v * self.gains[p] for p, v in w.items()})
        return self._net

    def fixed_point(self, x, y, beta, start, tol=1e-12, max_sweeps=2000):
        """States (list per dynamic layer) of the fixed point of Eq. 13-15 reached from ``start``.

        The single-sample form of :class:`analogprop.model.relax.FastSolver`'s
        projected block Gauss-Seidel sweeps (a board settles one sample at a
        time); the nudged output solves ``h = (drive + beta y) / (1 + beta)``.
        """
        net = self.network()
        L = net.n_layers
        h = [np.array(v, dtype=float) for v in start]
        base = net.input_drive(rho(x))
        for sweep in range(max_sweeps):
            change = 0.0
            for k in (range(1, L + 1) if sweep % 2 == 0 else range(L, 0, -1)):
                r_next = rho(h[k]) if k < L else None
                d = base + net.drive(1, None, r_next) if k == 1 else net.drive(k, rho(h[k - 2]), r_next)
                if k == L and beta:
                    d = (d + beta * y) / (1.0 + beta)
                new = np.clip(d, 0.0, 1.0)
                change = max(change, float(np.max(np.abs(new - h[k - 1]))))
                h[k - 1] = new
            if change <= tol:
                break
        return h


class CircuitPhysics(BoardPhysics):
    """The board as a compiled circuit (:mod:`analogprop.circuit`): behavioural level with
    node clamps, so node voltages are the paper's projected states; the die's spreads
    and write noise come from the profile, operating points from its CircuitSolver."""

    def __init__(self, profile: Profile):
        from ..circuit import Mismatch, compile_circuit
        from ..circuit.solver import CircuitSolver

        super().__init__(profile)
        emu = profile.emulation
        mismatch = Mismatch(g_dtod=emu.mismatch, gain_dtod=emu.gain_dtod, offset_dtod=emu.offset_dtod,
                            leak_dtod=emu.leak_dtod, write_noise_std=emu.write_noise_std)
        self.circuit = compile_circuit(profile.sizes, self.programmed_weights(), "behavioural", mismatch,
                                       die=emu.seed, clamp=True)
        self.circuit_solver = CircuitSolver(tol=1e-12)
        self._programmed = True

    def codes_changed(self) -> None:
        self._programmed = False

    def fixed_point(self, x, y, beta, start):
        if not self._programmed:  # one write of every device (fresh write noise)
            self.circuit.program(self.programmed_weights())
            self._programmed = True
        r = self.circuit_solver.solve(self.circuit, x[None], y[None] if beta else None, beta,
                                      start=[s[None] for s in start])
        return [s[0] for s in r.states]


@dataclass
class _Fault:
    kind: str
    match: str = ""
    arg: str = ""


class BenchState:
    """Everything the instruments hold, behind one lock."""

    def __init__(self, profile: Profile):
        p = profile
        self.profile = p
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(p.emulation.seed + 1)
        self.physics = (CircuitPhysics if p.emulation.physics == "circuit" else BoardPhysics)(p)
        src_channels = [s for s in p.instruments.values() if s.kind == "voltage_source"]
        self.volts = {s.name: np.zeros(s.channels[1] - s.channels[0] + 1) for s in src_channels}
        self.outputs = {s.name: False for s in src_channels}
        self.errors = {n: [] for n in p.instruments}
        self.faults = {n: [] for n in p.instruments}
        self.stuck = {n: set() for n in p.instruments}
        self.sample_count = 1
        # sourcing current: the state a previous user may leave a 2450 in (it keeps its source
        # function until reset), so nothing is powered until :SOUR:FUNC VOLT is sent
        self.smu = {"volt": 0.0, "ilim": 1e-3, "out": False, "func": "CURR", "lang": p.emulation.smu_language}
        self.nudge_code, self.nudge_on = 0, False
        self.h_start = [np.zeros(n) for n in p.sizes[1:]]
        self.target = None
        self.t_change = time.monotonic()
        self.commands = {n: 0 for n in p.instruments}

    def push_error(self, name: str, code: int, message: str) -> None:
        """Queue a SCPI error; a full queue's last entry becomes -350 (Queue overflow)."""
        q = self.errors[name]
        if len(q) < ERROR_QUEUE_DEPTH:
            q.append((code, message))
        else:
            q[-1] = (-350, "Queue overflow")

    # -- physics ---------------------------------------------------------------
    def powered(self) -> bool:
        s = self.smu
        return (s["out"] and s["func"] == "VOLT" and s["volt"] >= 0.5 * self.profile.supply_voltage
                and not self.tripped())

    def tripped(self) -> bool:
        return self.smu["out"] and self.profile.emulation.supply_current_a > self.smu["ilim"]

    def _applied(self, block):
        spec = self.profile.instruments[block.instrument]
        v = self.volts[block.instrument] if self.outputs[block.instrument] else np.zeros_like(self.volts[block.instrument])
        return v[block.channels[0] - spec.channels[0]: block.channels[1] - spec.channels[0] + 1].copy()

    def _blend(self, now):
        if self.target is None:
            return [v.copy() for v in self.h_start]
        tau = self.profile.emulation.tau_ms / 1e3
        a = 1.0 if tau == 0 else 1.0 - np.exp(-max(now - self.t_change, 0.0) / tau)
        return [s + a * (t - s) for s, t in zip(self.h_start, self.target)]

    def changed(self) -> None:
        """A command changed what the board sees: the transient restarts from here."""
        now = time.monotonic()
        self.h_start = self._blend(now)
        self.target = None
        self.t_change = now

    def states(self) -> np.ndarray:
        """Neuron voltages now (all dynamic layers, concatenated), before read noise."""
        p = self.profile
        if not self.powered():
            self.h_start = [np.zeros_like(v) for v in self.h_start]
            self.target = None
            return np.zeros(sum(p.sizes[1:]))
        if self.target is None:
            x, y = self._applied(p.inputs), self._applied(p.targets)
            beta = p.nudge_beta_max * self.nudge_code / p.nudge_codes[1] if self.nudge_on else 0.0
            self.target = self.physics.fixed_point(x, y, beta, self.h_start)
        return np.concatenate(self._blend(time.monotonic()))

    def read(self, first: int, last: int) -> list[float]:
        p, emu = self.profile, self.profile.emulation
        spec = p.instruments[p.states_instrument]
        if not spec.has(first, last):
            raise CommandError(-222, f"Data out of range; channels {first}:{last}")
        s = self.states()
        out = []
        for _ in range(self.sample_count):
            for ch in range(first, last + 1):
                i = ch - p.states_channels[0]
                v = s[i] if 0 <= i < s.size else 0.0
                if ch in self.stuck[spec.name]:
                    v = 0.0
                    self.push_error(spec.name, -240, f"Hardware error; channel {ch} stuck")
                if emu.read_noise_v:
                    v += emu.read_noise_v * self.rng.standard_normal()
                out.append(round(v / emu.resolution_v) * emu.resolution_v)
        return out


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        server, bench = self.server, self.server.bench
        try:
            while True:
                line = self.rfile.readline(MAX_LINE + 1)
                if not line.endswith(b"\n"):
                    if len(line) <= MAX_LINE:  # end of stream mid-line: the partial command is not executed
                        return
                    with bench.state.lock:
                        bench.state.push_error(server.name, -223, "Too much data")
                    if not self._skip_line():
                        return
                    continue
                lines, delay, close = bench.execute(server.name, line.decode("ascii", "replace").strip())
                if close:
                    self.request.shutdown(socket.SHUT_RDWR)
                    return
                if lines:
                    if delay:
                        time.sleep(delay)
                    self.wfile.write("".join(f"{r}\n" for r in lines).encode())
        except OSError:
            return

    def _skip_line(self) -> bool:
        """Discard input up to the next terminator, a bounded chunk at a time; False at end of stream."""
        while True:
            chunk = self.rfile.readline(MAX_LINE)
            if not chunk:
                return False
            if chunk.endswith(b"\n"):
                return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, bench, name, max_clients):
        self.bench, self.name, self.max_clients = bench, name, max_clients
        self.sockets = set()
        self.clients_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def verify_request(self, request, client_address):
        """Accept a session while fewer than ``max_clients`` are open; refuse (close) any other."""
        with self.clients_lock:
            if len(self.sockets) < self.max_clients:
                self.sockets.add(request)
                return True
        self.bench.log(f"{self.name}: refused a connection from {client_address[0]}:{client_address[1]} "
                       f"({self.max_clients} sessions already open)")
        return False

    def shutdown_request(self, request):
        with self.clients_lock:
            self.sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        with self.clients_lock:
            open_ = list(self.sockets)
        for s in open_:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def check_fault(profile: Profile, instrument: str, kind: str, match: str = "", arg: str = "") -> None:
    """Raise ValueError naming the problem if the fault cannot be armed as given."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r} (choose {', '.join(FAULT_KINDS)})")
    if instrument not in profile.instruments:
        raise ValueError(f"no instrument {instrument!r} in the profile (defined: {', '.join(profile.instruments)})")
    if kind in ("drop", "drop_after", "range") and arg:
        raise ValueError(f"fault {kind!r} takes no argument, got {arg!r}")
    if kind == "delay" and arg:
        try:
            seconds = float(arg)
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= 3600:
            raise ValueError(f"delay {arg!r} is not a number of seconds in [0, 3600]")
    if kind == "error" and arg and not re.fullmatch(r'[+-]?\d+,"[^"]*"', arg):
        raise ValueError(f'error {arg!r} is not CODE,"TEXT" (e.g. -350,"Queue overflow")')
    if kind == "wrong" and arg and not arg.endswith("?"):
        raise ValueError(f"wrong reply source {arg!r} is not a query (ends with '?')")
    if kind in ("malformed", "extra") and "\n" in arg:
        raise ValueError("a reply line cannot hold a line break")
    if kind == "stuck":
        channels = profile.instruments[instrument].channels
        if not re.fullmatch(r"\d+", arg) or not channels[0] <= int(arg) <= channels[1] or channels == (0, 0):
            raise ValueError(f"stuck channel {arg!r} is not a channel of {instrument!r} "
                             f"({'none' if channels == (0, 0) else f'{channels[0]}..{channels[1]}'})")


class BenchEmulator:
    """Runs one server per instrument of ``profile`` on 127.0.0.1.

    With ``ephemeral`` every server binds a free port (see :attr:`resources`);
    otherwise it binds the port of the instrument's resource string, which
    must be a ``TCPIP::127.0.0.1::PORT::SOCKET`` resource.  Each server
    serves at most ``max_clients`` sessions at a time; ``log`` receives a
    line for every refused connection (default: standard error).
    """

    def __init__(self, profile: Profile, ephemeral: bool = False, max_clients: int = MAX_CLIENTS, log=None):
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.profile = profile
        self.log = log or (lambda msg: print(f"bench emulator: {msg}", file=sys.stderr, flush=True))
        self.state = BenchState(profile)
        self.servers, self.resources = {}, {}
        try:
            for name, spec in profile.instruments.items():
                port = 0 if ephemeral else _loopback_port(spec.resource, name)
                srv = _Server(("127.0.0.1", port), self, name, max_clients)
                self.servers[name] = srv
                self.resources[name] = f"TCPIP::127.0.0.1::{srv.server_address[1]}::SOCKET"
        except OSError as e:
            self.close()
            from ..errors import ConfigError

            raise ConfigError(f"bench emulator: cannot bind 127.0.0.1 port ({e.strerror or e})") from None
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                        for s in self.servers.values()]
        for t in self.threads:
            t.start()

    def inject(self, instrument: str, kind: str, match: str = "", arg: str = "") -> None:
        """Arm a fault (see module docstring) on ``instrument``; ValueError if it cannot be armed."""
        check_fault(self.profile, instrument, kind, match, arg)
        with self.state.lock:
            if kind == "stuck":
                self.state.stuck[instrument].add(int(arg))
            else:
                self.state.faults[instrument].append(_Fault(kind, match.upper(), arg))

    def pending_faults(self) -> int:
        with self.state.lock:
            return sum(len(f) for f in self.state.faults.values())

    def sessions(self, instrument: str) -> int:
        """Sessions open on ``instrument``'s server."""
        srv = self.servers[instrument]
        with srv.clients_lock:
            return len(srv.sockets)

    def close(self) -> None:
        for s in self.servers.values():
            s.shutdown()
            s.close_all()
            s.server_close()
        self.servers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- protocol ------------------------------------------------------------------
    def execute(self, name: str, line: str):
        """Run one line on instrument ``name``: returns (reply lines, delay, close)."""
        st = self.state
        delay = 0.0
        with st.lock:
            st.commands[name] += 1
            fault = next((f for f in st.faults[name] if line.upper().lstrip(":").startswith(f.match)), None)
            if fault:
                st.faults[name].remove(fault)
                if fault.kind == "drop":
                    return [], 0.0, True
                if fault.kind == "error":
                    code, _, msg = (fault.arg or '-350,"Queue overflow"').partition(",")
                    st.push_error(name, int(code), msg.strip('"'))
                if fault.kind == "delay":
                    delay = float(fault.arg or 5.0)
            replies = self._run_line(name, line, fault if fault and fault.kind == "range" else None)
            if fault and fault.kind == "drop_after":
                return [], 0.0, True
            lines = [";".join(replies)] if replies else []
            if fault and fault.kind == "malformed":
                lines = [fault.arg or "ERROR"]
            elif fault and fault.kind == "wrong":
                lines = [";".join(self._run_line(name, fault.arg or "*IDN?"))]
            elif fault and fault.kind == "extra":
                lines = lines + [fault.arg or (lines[0] if lines else "1")]
        return lines, delay, False

    def _run_line(self, name: str, line: str, range_fault=None) -> list[str]:
        """Execute the ``;``-separated commands of a line; returns the replies of its queries."""
        st, replies = self.state, []
        for cmd in line.split(";"):
            cmd = cmd.strip().lstrip(":")
            if not cmd:
                continue
            try:
                if range_fault and not cmd.endswith("?"):
                    range_fault = None
                    raise CommandError(-222, "Data out of range")
                r = self._command(name, cmd)
            except CommandError as e:
                st.push_error(name, e.code, e.message)
                r = None
            if r is not None:
                replies.append(r)
        return replies

    def _command(self, name: str, cmd: str):
        st, spec = self.state, self.profile.instruments[name]
        head, _, arg = cmd.partition(" ")
        head = head.upper()
        if head == "*IDN?":
            return f"{spec.idn},EMU-{name},{self.profile.emulation.seed},1.0"
        if head == "*CLS":
            st.errors[name].clear()
            return None
        if head == "*OPC?":
            return "1"
        if head == "*LANG?" and spec.kind == "smu":
            return st.smu["lang"]
        if head == "EMUL:FAULT":
            parts = [p.strip() for p in arg.split(",", 2)]
            try:
                self.inject(name, *parts)
            except (ValueError, TypeError) as e:
                raise CommandError(-224, f"Illegal parameter value; {e}") from None
            return None
        if spec.kind == "smu" and st.smu["lang"] == "TSP":  # a TSP syntax error: logged, no reply
            raise CommandError(-285, f"Program syntax error; {head} is not TSP")
        if head == "SYST:ERR?":
            return self._pop_error(name)
        handler = getattr(self, f"_{spec.kind}")
        return handler(name, spec, head, arg)

    def _pop_error(self, name):
        q = self.state.errors[name]
        if not q:
            return '0,"No error"'
        code, msg = q.pop(0)
        return f'{code},"{msg}"'

    def _voltage_source(self, name, spec, head, arg):
        st = self.state
        if head == "OUTP":
            st.outputs[name] = _numbers(arg, int) == [1]
            st.changed()
            return None
        if head == "OUTP?":
            return str(int(st.outputs[name]))
        if head in ("SOUR:VOLT", "SOUR:VOLT?", "SOUR:CURR:LIM"):
            a, b, rest = _channels(arg)
            if not spec.has(a, b):
                raise CommandError(-222, f"Data out of range; channels {a}:{b}")
            sl = slice(a - spec.channels[0], b - spec.channels[0] + 1)
            if head == "SOUR:VOLT?":
                return ",".join(f"{v:.6g}" for v in st.volts[name][sl])
            values = np.array(_numbers(rest))
            if head == "SOUR:CURR:LIM":
                return None
            if values.size not in (1, b - a + 1):
                raise CommandError(-109, f"Missing parameter; {values.size} values for {b - a + 1} channels")
            if not np.all((values >= SOURCE_RANGE_V[0]) & (values <= SOURCE_RANGE_V[1])):
                raise CommandError(-222, "Data out of range")
            new = np.broadcast_to(values, (b - a + 1,)).copy()
            stuck = [c for c in range(a, b + 1) if c in st.stuck[name]]
            for c in stuck:
                new[c - a] = st.volts[name][c - spec.channels[0]]
                st.push_error(name, -240, f"Hardware error; channel {c} stuck")
            st.volts[name][sl] = new
            st.changed()
            return None
        raise CommandError(-113, f"Undefined header; {head}")

    def _dmm_scanner(self, name, spec, head, arg):
        st = self.state
        if head == "SAMP:COUN":
            n = _numbers(arg, int)
            if len(n) != 1 or not 1 <= n[0] <= 1000:
                raise CommandError(-222, "Data out of range")
            st.sample_count = n[0]
            return None
        if head == "SAMP:COUN?":
            return str(st.sample_count)
        if head == "MEAS:VOLT:DC?":
            a, b, _ = _channels(arg)
            return ",".join(f"{v:.9g}" for v in st.read(a, b))
        raise CommandError(-113, f"Undefined header; {head}")

    def _smu(self, name, spec, head, arg):
        st, s = self.state, self.state.smu
        if s["lang"] == "SCPI2400" and "ILIM" in head:  # the 2400 sets its compliance with :SENS:CURR:PROT
            raise CommandError(-113, f"Undefined header; {head}")
        if head == "SOUR:FUNC":
            func = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"}.get(arg.strip().upper())
            if func is None:
                raise CommandError(-224, f"Illegal parameter value; {arg.strip()[:20]!r}")
            s["func"] = func
            st.changed()
            return None
        if head == "SOUR:FUNC?":
            return s["func"]
        setters = {"SOUR:VOLT": ("volt", SMU_RANGE_V), "SOUR:VOLT:ILIM": ("ilim", (1e-9, 1.05))}
        if head in setters:
            key, (lo, hi) = setters[head]
            v = _numbers(arg)
            if len(v) != 1 or not lo <= v[0] <= hi:
                raise CommandError(-222, "Data out of range")
            s[key] = v[0]
            st.changed()
            return None
        if head == "OUTP":
            s["out"] = _numbers(arg, int) == [1]
            st.changed()
            return None
        getters = {"SOUR:VOLT?": lambda: f"{s['volt']:.6g}", "SOUR:VOLT:ILIM?": lambda: f"{s['ilim']:.6g}",
                   "OUTP?": lambda: str(int(s["out"])), "SOUR:VOLT:ILIM:TRIP?": lambda: str(int(st.tripped())),
                   "MEAS:CURR?": lambda: f"{(min(self.profile.emulation.supply_current_a, s['ilim']) if s['out'] else 0.0):.6g}"}
        if head in getters:
            return getters[head]()
        raise CommandError(-113, f"Undefined header; {head}")

    def _board(self, name, spec, head, arg):
        st, phys, cond = self.state, self.state.physics, self.profile.conductances
        if head == "PROG":
            v = _numbers(arg, int)
            if len(v) < 2:
                raise CommandError(-109, "Missing parameter")
            addr, codes = v[0], np.array(v[1:])
            if addr < 0 or addr + codes.size > cond.address_count:
                raise CommandError(-222, "Data out of range; address")
            if codes.min() < cond.codes[0] or codes.max() > cond.codes[1]:
                raise CommandError(-222, "Data out of range; code")
            phys.codes[addr:addr + codes.size] = codes
            phys.codes_changed()
            st.changed()
            return None
        if head == "PROG?":
            v = _numbers(arg, int)
            if len(v) != 2 or v[0] < 0 or v[1] < 1 or v[0] + v[1] > cond.address_count:
                raise CommandError(-222, "Data out of range")
            return ",".join(map(str, phys.codes[v[0]:v[0] + v[1]].tolist()))
        if head == "CRC?":
            v = _numbers(arg, int)
            if len(v) != 2 or v[0] < 0 or v[1] < 1 or v[0] + v[1] > cond.address_count:
                raise CommandError(-222, "Data out of range")
            return str(codes_crc(phys.codes[v[0]:v[0] + v[1]]))
        if head == "NUDG":
            v = _numbers(arg, int)
            if len(v) != 1 or not 0 <= v[0] <= self.profile.nudge_codes[1]:
                raise CommandError(-222, "Data out of range")
            st.nudge_code = v[0]
            st.changed()
            return None
        if head == "NUDG?":
            return str(st.nudge_code)
        if head == "NUDG:STAT":
            st.nudge_on = _numbers(arg, int) == [1]
            st.changed()
            return None
        if head == "NUDG:STAT?":
            return str(int(st.nudge_on))
        raise CommandError(-113, f"Undefined header; {head}")


def _loopback_port(resource: str, name: str) -> int:
    from ..errors import ConfigError

    m = re.match(r"^TCPIP\d*::(127\.0\.0\.1|localhost)::(\d+)::SOCKET$", resource)
    if not m:
        raise ConfigError(f"bench emulator: instrument {name!r}: resource {resource!r} is not a "
                          f"TCPIP::127.0.0.1::PORT::SOCKET resource (the emulator binds loopback only)")
    return int(m.group(2))


def profile_text_with_resources(text: str, old: dict, new: dict) -> str:
    """A profile's TOML text with each instrument's resource string replaced."""
    for name, res in new.items():
        text = text.replace(f'"{old[name]}"', f'"{res}"')
    return text
