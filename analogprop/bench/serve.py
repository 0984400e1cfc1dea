"""``analogprop bench serve``: run the bench emulator of a profile in the foreground."""
from __future__ import annotations

import sys
import time

from ..errors import ConfigError
from .emulator import BenchEmulator
from .profile import load_profile


def parse_fault(text: str) -> tuple[str, ...]:
    parts = text.split(":", 3)
    if len(parts) < 2:
        raise ConfigError(f"--fault {text!r}: expected INSTRUMENT:KIND[:MATCH[:ARG]]")
    return tuple(parts)


def serve(args) -> None:
    from ..cli import STOP

    profile = load_profile(args.profile)
    faults = [parse_fault(f) for f in args.fault]
    with BenchEmulator(profile) as emu:
        for f in faults:
            try:
                emu.inject(*f)
            except ValueError as e:
                raise ConfigError(f"--fault {':'.join(f)}: {e}") from None
        for name, res in emu.resources.items():
            print(f"{name}: {res} ({profile.instruments[name].kind})", flush=True)
        print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
        end = time.monotonic() + args.duration if args.duration else float("inf")
        while not STOP.requested and time.monotonic() < end:
            time.sleep(0.05)
