"""``analogprop bench serve``: run the bench emulator of a profile in the foreground."""
from __future__ import annotations

import math
import sys
import time

from ..errors import ConfigError
from ..stop import STOP
from .emulator import BenchEmulator, check_fault
from .profile import Profile, load_profile


def parse_fault(text: str, profile: Profile) -> tuple[str, ...]:
    """``INSTRUMENT:KIND[:MATCH[:ARG]]`` checked against ``profile`` (ConfigError naming the problem)."""
    parts = tuple(text.split(":", 3))
    if len(parts) < 2:
        raise ConfigError(f"--fault {text!r}: expected INSTRUMENT:KIND[:MATCH[:ARG]]")
    try:
        check_fault(profile, *parts)
    except ValueError as e:
        raise ConfigError(f"--fault {text}: {e}") from None
    return parts


def check_options(duration, max_clients) -> None:
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ConfigError(f"--duration {duration}: expected a finite number of seconds > 0")
    if max_clients < 1:
        raise ConfigError(f"--max-clients {max_clients}: expected at least 1 session per instrument")


def serve(profile_path, faults=(), duration: float | None = None, max_clients: int = 4, stop=None) -> None:
    """Serve the emulated instruments of the profile at ``profile_path`` on 127.0.0.1 until ``stop()`` is
    true (default: Ctrl-C) or ``duration`` seconds have passed; ``faults`` are ``--fault`` specs."""
    if stop is None:
        stop = lambda: STOP.requested  # noqa: E731
    check_options(duration, max_clients)
    profile = load_profile(profile_path)
    faults = [parse_fault(f, profile) for f in faults]
    with BenchEmulator(profile, max_clients=max_clients) as emu:
        for f in faults:
            emu.inject(*f)
        for name, res in emu.resources.items():
            print(f"{name}: {res} ({profile.instruments[name].kind})", flush=True)
        print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
        end = time.monotonic() + duration if duration else float("inf")
        while not stop() and time.monotonic() < end:
            time.sleep(0.05)
