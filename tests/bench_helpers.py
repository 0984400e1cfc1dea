"""Shared by the bench tests: an emulator on ephemeral loopback ports."""
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from analogprop.bench.emulator import BenchEmulator
from analogprop.bench.profile import load_profile

INSTRUMENTS = Path(__file__).resolve().parent.parent / "instruments"
SMALL = INSTRUMENTS / "emulated-6-4-3.toml"
DIGITS = INSTRUMENTS / "emulated-64-32-10.toml"
IDEAL = {"mismatch": 0.0, "read_noise_v": 0.0, "tau_ms": 0.0}


def profile(path=SMALL, timing=None, recovery=None, timeout_ms=None, **emulation):
    """A shipped profile with some emulator settings replaced (``IDEAL`` by default)."""
    p = load_profile(path)
    if timeout_ms:
        p = replace(p, instruments={n: replace(s, timeout_ms=timeout_ms) for n, s in p.instruments.items()})
    p = replace(p, emulation=replace(p.emulation, **{**IDEAL, **emulation}))
    p = replace(p, settle_free_s=0.0, settle_nudged_s=0.0, **(timing or {}))
    if recovery:
        p = replace(p, **recovery)
    return p


@contextmanager
def emulated(p):
    """(emulator, profile pointing at it) with every server on a free 127.0.0.1 port."""
    emu = BenchEmulator(p, ephemeral=True)
    try:
        yield emu, p.with_resources(emu.resources)
    finally:
        emu.close()
