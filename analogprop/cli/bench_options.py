"""Command-line options of ``analogprop bench`` (the visa driver's training options come from the configuration tree)."""
from __future__ import annotations

from ..bench.emulator import MAX_CLIENTS


def add_serve_options(p) -> None:
    """Options of ``bench serve``."""
    p.add_argument("action", choices=["serve"], help="serve: run the emulator until Ctrl-C (or --duration)")
    p.add_argument("--profile", required=True, help="bench profile TOML whose TCPIP::127.0.0.1::PORT::SOCKET resources are served")
    p.add_argument("--fault", action="append", default=[], metavar="INSTRUMENT:KIND[:MATCH[:ARG]]",
                   help="arm a fault at start (kinds: drop, drop_after, delay, error, range, malformed, wrong, "
                        "extra, stuck); repeatable")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--max-clients", type=int, default=MAX_CLIENTS,
                   help=f"sessions served at a time per instrument; further connections are closed (default {MAX_CLIENTS})")
