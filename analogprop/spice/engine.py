"""The ngspice shared library, loaded once per process through PySpice.

Debian's ``libngspice0`` ships only ``libngspice.so.0`` while PySpice 1.5
looks for ``libngspice.so`` and warns about any ngspice version newer than
its tables; :func:`engine` finds the library with ``ctypes.util`` and
registers the version quietly.  PySpice raises on every stderr line that does
not start with ``Warning:`` (gmin-stepping notes of a circuit that did
converge included); :class:`Engine` collects those lines instead and the
callers judge success from the vectors they read.

ngspice keeps global state per loaded library, so there is one
:class:`Engine` per process (use processes for parallel work).
"""
from __future__ import annotations

import ctypes.util
import re
import threading
from pathlib import Path

import numpy as np

from ..errors import AnalogpropError

_ERROR = re.compile(r"error|unknown|not found|cannot|can't|could not|too few|too many|no such|"
                    r"undefined|fatal|failed|abort", re.I)
#: stderr lines that are ngspice's normal chatter, not failures.
_HARMLESS = re.compile(r"^(Warning:|Note:|Using SPARSE|\s*$|Circuit: |Doing analysis|Reference value|"
                       r"No\. of Data Rows|binary raw file|ASCII raw file|Trying gmin|Supplies reduced|"
                       r"gmin step|source step|Starting (true )?gmin|Starting source|Gmin|Source)", re.I)


class SpiceError(AnalogpropError):
    """ngspice is missing, rejected a netlist or failed a command."""


class NetlistError(SpiceError):
    """ngspice rejected a netlist; the message quotes ngspice and names the file."""


def _library_name() -> str:
    found = ctypes.util.find_library("ngspice")
    if not found:
        raise SpiceError("the ngspice shared library was not found: install Debian's libngspice0 and ngspice "
                         "(`make setup` does)")
    return found


_lock = threading.Lock()
_instance = None


def engine():
    """The process's ngspice instance (created on first use)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = _create()
        return _instance


def _create():
    from PySpice.Spice.NgSpice import SimulationType
    from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi, ffi_string_utf8

    table = SimulationType.SIMULATION_TYPE
    for version in range(max(v for v in table if isinstance(v, int)) + 1, 100):
        table.setdefault(version, table["last"])  # PySpice's newest table: no "unsupported version" warning

    class Engine(NgSpiceShared):
        """NgSpiceShared that collects stdout/stderr lines instead of raising on them."""

        LIBRARY_PATH = _library_name()

        @staticmethod
        def _send_char(message_c, ngspice_id, user_data):
            self = ffi.from_handle(user_data)
            stream, _, content = ffi_string_utf8(message_c).partition(" ")
            (self._stderr if stream == "stderr" else self._stdout).append(content)
            return 0

        def exec_command(self, command, join_lines=True):
            """Run one interactive command; returns its stdout (never raises on stderr lines)."""
            if len(command) > self.MAX_COMMAND_LENGTH:
                raise SpiceError(f"ngspice command longer than {self.MAX_COMMAND_LENGTH} characters: {command[:60]}...")
            self._number_of_exec_calls += 1
            if self._number_of_exec_calls > self.NUMBER_OF_EXEC_CALLS_TO_RELEASE_MEMORY:
                self._ngspice_shared.ngSpice_Command(ffi.NULL)  # frees ngspice's command history
                self._number_of_exec_calls = 0
            self.clear_output()
            rc = self._ngspice_shared.ngSpice_Command(command.encode("ascii"))
            if rc:
                raise SpiceError(f"ngspice command {command!r} returned {rc}: {self.problems()}")
            return self.stdout if join_lines else list(self._stdout)

        def problems(self) -> str:
            """The error-looking lines ngspice printed for the last command, joined."""
            lines = [ln.strip() for ln in self._stderr + self._stdout
                     if ln.strip() and not _HARMLESS.match(ln.strip()) and _ERROR.search(ln)]
            return "; ".join(dict.fromkeys(lines))

        def load(self, text: str, path: Path | str = "<netlist>") -> None:
            """Replace the loaded circuit by ``text`` (old circuit and plots released)."""
            self.release(circuits=True)
            lines = [ln for ln in text.splitlines() if ln.strip()] + [""]
            keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [ffi.NULL]
            self.clear_output()
            rc = self._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
            problems = self.problems()
            if rc or problems or not self._circuit_loaded():
                raise NetlistError(f"ngspice rejected the netlist {path}: {problems or 'no circuit was loaded'}")
            self._loaded = True

        def _circuit_loaded(self) -> bool:
            self.exec_command("listing param")
            return not any("no circuit" in ln.lower() for ln in self._stdout + self._stderr)

        def release(self, circuits: bool = False) -> None:
            """Free result plots (and with ``circuits`` every loaded circuit): keeps memory flat."""
            self.exec_command("destroy all")
            if circuits and getattr(self, "_loaded", False):
                self.exec_command("remcirc")
                self._loaded = False

        def vector(self, name: str) -> np.ndarray:
            """Copy of one real vector of the current plot (e.g. ``v(h1_0)``), or an empty array."""
            info = self._ngspice_shared.ngGet_Vec_Info(name.encode("ascii"))
            if info == ffi.NULL or info.v_realdata == ffi.NULL:
                return np.empty(0)
            return np.frombuffer(ffi.buffer(info.v_realdata, info.v_length * 8), dtype=np.float64).copy()

        def vectors(self, names) -> np.ndarray:
            """Vectors stacked as columns (points, len(names)); rows cut to the shortest vector."""
            cols = [self.vector(n) for n in names]
            n = min((len(c) for c in cols), default=0)
            return np.stack([c[:n] for c in cols], axis=1) if cols else np.empty((0, 0))

    inst = Engine(ngspice_id=0, send_data=False)
    inst._loaded = False
    return inst
