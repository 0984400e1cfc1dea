"""``analogprop bench serve``: run the bench emulator of a profile in the foreground."""
from __future__ import annotations

import math
import sys
import time

from ..errors import ConfigError
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


def check_options(args) -> None:
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration {args.duration}: expected a finite number of seconds > 0")
    if args.max_clients < 1:
        raise ConfigError(f"--max-clients {args.max_clients}: expected at least 1 session per instrument")


def serve(args) -> None:
    from ..cli import STOP

    check_options(args)
    profile = load_profile(args.profile)
    faults = [parse_fault(f, profile) for f in args.fault]
    with BenchEmulator(profile, max_clients=args.max_clients) as emu:
        for f in faults:
            emu.inject(*f)
        for name, res in emu.resources.items():
            print(f"{name}: {res} ({profile.instruments[name].kind})", flush=True)
        print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
        end = time.monotonic() + args.duration if args.duration else float("inf")
        while not STOP.requested and time.monotonic() < end:
            time.sleep(0.05)
