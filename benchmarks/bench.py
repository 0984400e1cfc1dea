"""Training in the loop through the bench emulator: round-trips and samples per second.

The emulator of ``instruments/emulated-64-32-10.toml`` runs in its own process
(a bench is other hardware); this process trains a 64-32-10 network on the
embedded digits through the VISA driver over loopback TCP (pyvisa-py), with
the profile's settle times (0.3 ms per phase), and prints per-phase
round-trips (queries), writes and time per training sample.

    .venv/bin/python benchmarks/bench.py [--samples 600] [--batch-size 20]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

from analogprop.bench.profile import load_profile

PROFILE = Path(__file__).resolve().parent.parent / "instruments" / "emulated-64-32-10.toml"


def _serve(conn):
    from analogprop.bench.emulator import BenchEmulator

    with BenchEmulator(load_profile(PROFILE), ephemeral=True) as emu:
        conn.send(emu.resources)
        conn.recv()  # until the parent says stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=600, help="training samples to run (default 600)")
    ap.add_argument("--batch-size", type=int, default=20)
    args = ap.parse_args()

    from analogprop.data import load_digits
    from analogprop.drivers.visa import VisaDriver
    from analogprop.model.network import Network
    from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        profile = load_profile(PROFILE).with_resources(parent.recv())
        data = load_digits()
        with VisaDriver(profile, Network.create((64, 32, 10), seed=0), log=lambda m: None) as drv:
            for t in drv.traffic.values():
                t.update(writes=0, queries=0, samples=0, calls=0, seconds=0.0)
            tr = TwoPhaseTrainer(drv, TrainConfig(lrs=(0.5, 0.2), beta=0.5, batch_size=args.batch_size))
            n = 0
            t0 = time.perf_counter()
            while n < args.samples:
                idx = slice(n % 1400, n % 1400 + args.batch_size)
                tr.step(data.x_train[idx], data.y_train[idx])
                n += args.batch_size
            elapsed = time.perf_counter() - t0
            traffic = {k: dict(v) for k, v in drv.traffic.items()}
    finally:
        parent.send("stop")
        server.join(10)

    print("board: 64-32-10 (emulated, separate process, loopback TCP)")
    print(f"batch_size: {args.batch_size}")
    print(f"samples: {n}")
    total_q = total_w = 0
    for phase in ("free", "nudged", "program"):
        t = traffic[phase]
        q, w = t["queries"] / n, t["writes"] / n
        total_q, total_w = total_q + q, total_w + w
        print(f"round_trips_per_sample_{phase}: {q:.3f}")
        print(f"writes_per_sample_{phase}: {w:.3f}")
        print(f"ms_per_sample_{phase}: {1e3 * t['seconds'] / n:.3f}")
    print(f"round_trips_per_sample: {total_q:.3f}")
    print(f"writes_per_sample: {total_w:.3f}")
    print(f"samples_per_s: {n / elapsed:.1f}")


if __name__ == "__main__":
    main()
