"""A small declarative layer over pyvisa, in the style of pymeasure's ``Instrument.control``.

Instrument classes declare their settings as :func:`control` descriptors with
a validator; a setpoint is validated (and refused with :class:`SetpointError`)
before anything is written.  :class:`Instrument` opens a VISA session,
checks ``*IDN?``, drains ``SYST:ERR?`` and counts writes and queries, and
turns pyvisa timeouts and dropped connections into :class:`ConnectionLost`
and replies that do not parse as the query's answer into :class:`ReplyError`.
"""
from __future__ import annotations

import math
import re
import socket

import pyvisa

from ..errors import AnalogpropError, ConfigError


class InstrumentError(AnalogpropError):
    """An instrument replied wrongly, reported an error or cannot be reached."""


class ConnectionLost(InstrumentError):
    """A timeout or dropped connection: reconnecting may help."""


class ReplyError(InstrumentError):
    """A reply that does not answer the query (malformed, wrong count or kind): the
    session is out of step, and a fresh one (reconnecting) resynchronises it."""


class SCPIErrorQueued(InstrumentError):
    """``SYST:ERR?`` reported errors; ``errors`` holds (code, message) pairs."""

    def __init__(self, instrument: str, errors: list[tuple[int, str]]):
        self.instrument, self.errors = instrument, errors
        text = "; ".join(f"{c},{m}" for c, m in errors)
        super().__init__(f"instrument {instrument!r} reported error(s): {text}")


class SetpointError(ConfigError):
    """A setpoint outside the allowed range, refused before it was sent."""


# -- validators: value, allowed -> checked value (raise ValueError) ------------
def strict_discrete_set(value, allowed):
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, allowed))}")
    return value


def strict_range(value, limits):
    lo, hi = limits
    v = float(value)
    if not (lo <= v <= hi):
        raise ValueError(f"{value!r} is outside [{lo}, {hi}]")
    return v


def boolean(value, _=None):
    if value not in (0, 1, True, False):
        raise ValueError(f"{value!r} is not a boolean")
    return int(bool(value))


def control(get_command, set_command, doc, validator=None, values=None, cast=float):
    """A setting read with ``get_command`` and written with ``set_command.format(value)``.

    ``values`` may be a callable of the instrument (limits that depend on its
    configuration).  Reading returns ``cast`` of the reply (:class:`ReplyError` if it does not parse).
    """
    def fget(self):
        return self.parse(self.query(get_command), cast, get_command)

    def fset(self, value):
        allowed = values(self) if callable(values) else values
        try:
            v = validator(value, allowed) if validator else value
        except (ValueError, TypeError) as e:
            raise SetpointError(f"{self.name}: {doc.split(':')[0]}: {e}; not sent") from None
        self.write(set_command.format(v))

    return property(fget, fset, doc=doc)


def measurement(get_command, doc, cast=float):
    """A read-only quantity."""
    return property(lambda self: self.parse(self.query(get_command), cast, get_command), doc=doc)


def channel_list(first: int, last: int) -> str:
    return f"(@{first}:{last})" if last > first else f"(@{first})"


_ERR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')


def _no_delay(resource) -> None:
    """Disable Nagle on a pyvisa-py raw socket session (its SOCKET sessions lack
    VI_ATTR_TCPIP_NODELAY): a write followed by a query must not wait ~40 ms for
    the instrument's delayed ACK."""
    session = getattr(resource.visalib, "sessions", {}).get(resource.session)
    sock = getattr(session, "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Instrument:
    """A VISA session with counting, ``*IDN?`` check and error-queue draining."""

    def __init__(self, name: str, resource: str, idn: str, timeout_ms: int, rm: pyvisa.ResourceManager):
        self.name, self.resource, self.idn_prefix = name, resource, idn
        self.timeout_ms, self.rm = timeout_ms, rm
        self.session = None
        self.writes = 0
        self.queries = 0
        self.idn = ""

    # -- session ---------------------------------------------------------------
    def connect(self) -> "Instrument":
        """Open the session and check that ``*IDN?`` starts with the expected prefix.

        A raw socket starts with empty buffers; on other interfaces (GPIB,
        VXI-11, USBTMC) the instrument keeps unread replies across sessions,
        so a device clear discards them first.
        """
        self.disconnect()
        try:
            self.session = self.rm.open_resource(self.resource, read_termination="\n", write_termination="\n",
                                                 timeout=self.timeout_ms)
            if not self.resource.upper().endswith("::SOCKET"):
                self.session.clear()
        except (pyvisa.Error, OSError) as e:
            self.disconnect()
            raise ConnectionLost(f"instrument {self.name!r} at {self.resource}: cannot connect ({e})") from None
        _no_delay(self.session)
        try:
            self.check_language()
            self.idn = self.query("*IDN?").strip()
        except ConnectionLost as e:
            raise ConnectionLost(f"instrument {self.name!r} at {self.resource}: cannot connect "
                                 f"({str(e).partition(': ')[2]})") from None
        except InstrumentError:
            self.disconnect()
            raise
        if not self.idn.startswith(self.idn_prefix):
            self.disconnect()
            raise InstrumentError(f"instrument {self.name!r} at {self.resource} identifies as {self.idn!r}, "
                                  f"expected {self.idn_prefix!r}")
        return self

    def check_language(self) -> None:
        """Refuse an instrument speaking another command set (instruments that have several)."""

    def disconnect(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - a dead session may fail to close; it is dropped anyway
                pass
            self.session = None

    @property
    def connected(self) -> bool:
        return self.session is not None

    def _lost(self, what, e):
        self.disconnect()
        return ConnectionLost(f"instrument {self.name!r} at {self.resource}: {what} failed ({type(e).__name__}: {e})")

    def write(self, command: str) -> None:
        if self.session is None:
            raise ConnectionLost(f"instrument {self.name!r} is not connected")
        try:
            self.session.write(command)
        except (pyvisa.Error, OSError) as e:
            raise self._lost(f"write {command[:40]!r}", e) from None
        self.writes += 1

    def query(self, command: str) -> str:
        if self.session is None:
            raise ConnectionLost(f"instrument {self.name!r} is not connected")
        try:
            reply = self.session.query(command)
        except (pyvisa.Error, OSError) as e:
            raise self._lost(f"query {command[:40]!r}", e) from None
        except UnicodeDecodeError as e:
            self.queries += 1
            raise ReplyError(f"instrument {self.name!r}: {command[:40]!r}: reply is not ASCII "
                             f"({e.object[:40]!r})") from None
        self.queries += 1
        if reply == "" and not command.startswith("*"):
            raise self._lost(f"query {command[:40]!r}", EOFError("empty reply: connection closed"))
        return reply

    def write_synced(self, command: str) -> None:
        """Write ``command`` followed by ``*OPC?``: returns once the instrument has executed it."""
        reply = self.query(command + ";*OPC?").strip()
        if reply != "1":
            raise ReplyError(f"instrument {self.name!r}: {command[:40]!r};*OPC? replied {reply[:40]!r}, expected 1")

    # -- errors -----------------------------------------------------------------
    def drain_errors(self, limit: int = 50) -> list[tuple[int, str]]:
        """Read ``SYST:ERR?`` until it reports 0; returns the (code, message) pairs read."""
        errors = []
        for _ in range(limit):
            reply = self.query("SYST:ERR?")
            m = _ERR.match(reply)
            if not m:
                raise ReplyError(f"instrument {self.name!r}: malformed SYST:ERR? reply {reply[:80]!r}")
            code = int(m.group(1))
            if code == 0:
                return errors
            errors.append((code, m.group(2)))
        raise InstrumentError(f"instrument {self.name!r}: error queue did not empty after {limit} reads")

    def check_errors(self) -> None:
        """Raise :class:`SCPIErrorQueued` if the error queue holds anything."""
        errors = self.drain_errors()
        if errors:
            raise SCPIErrorQueued(self.name, errors)

    def parse(self, reply: str, cast, what: str):
        """``cast`` of a single-value reply; :class:`ReplyError` if it does not parse."""
        try:
            return cast(reply.strip())
        except (ValueError, TypeError):
            raise ReplyError(f"instrument {self.name!r}: {what}: malformed reply {reply[:80]!r}") from None

    def parse_floats(self, reply: str, count: int, what: str) -> list[float]:
        """Exactly ``count`` comma-separated finite numbers; :class:`ReplyError` otherwise."""
        try:
            values = [float(v) for v in reply.split(",")]
        except ValueError:
            raise ReplyError(f"instrument {self.name!r}: {what}: malformed reply {reply[:80]!r}") from None
        if len(values) != count:
            raise ReplyError(f"instrument {self.name!r}: {what}: expected {count} values, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ReplyError(f"instrument {self.name!r}: {what}: non-finite value in {reply[:80]!r}")
        return values

    def safe_shutdown(self) -> None:
        """Bring outputs to a safe state; instruments without outputs do nothing."""
