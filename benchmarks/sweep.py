"""Sweep benchmark: Dask speed-up, and the headline numbers of the embedded-digits robustness study.

1. Speed: a fixed small sweep (64-32-10 on digits, 3 epochs, crossbar,
   g_dtod 0/0.1/0.2 x 2 dies = 6 rows) on a loopback LocalCluster with 1 and
   with 2 single-threaded worker processes; the ideal reference is trained
   beforehand and cluster start-up is timed separately.  Concurrency is the
   summed wall time of the tasks inside the workers over the sweep's wall
   time (2 when both workers are busy throughout, whatever else loads the
   machine).
2. Study: 64-32-10 on digits, 10 epochs, ``--dies`` dies per point, at the
   conductance spreads ``--spreads`` with ``--offset`` volts of buffer/
   inverter offset, at the circuit ``--level``: ideal accuracy, accuracy of
   the ideal weights transferred onto the die, accuracy after in-circuit
   training, the fraction of the transfer loss that in-circuit training
   wins back, ``(circuit - transfer) / (ideal - transfer)``, and the accuracy
   of the transferred die after ``--finetune-epochs`` of in-circuit training.

Prints ``name: value`` lines; rows and plots go to ``--out``.

    python benchmarks/sweep.py [--skip-speed] [--skip-study] [--out benchmarks/out/sweep]
"""
import argparse
import os
import shutil
import time
from pathlib import Path

from analogprop.sweep import make_spec, run_sweep
from analogprop.sweep.execute import dask_client, run_dask
from analogprop.sweep.point import train_reference
from analogprop.sweep.store import summarize


def speed(out: Path):
    spec = make_spec(None, ["g_dtod=0,0.1,0.2"], level="crossbar", dies=2, epochs=3)
    tasks = spec.points()
    refs = {0: train_reference(tasks[0], out)}
    for t in tasks:
        t["reference"] = 0
    print(f"speed sweep rows: {len(tasks)}")
    seconds, rows = {}, {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with dask_client(workers) as client:
            client.wait_for_workers(workers)
            print(f"cluster start-up seconds, {workers} worker(s): {time.perf_counter() - t0:.2f}")
            got = []
            t0 = time.perf_counter()
            run_dask(client, tasks, refs, got.append, lambda: False)
            seconds[workers] = time.perf_counter() - t0
        rows[workers] = sorted((r["key"], r["transfer_accuracy"], r["circuit_accuracy"]) for r in got)
        print(f"sweep seconds, {workers} worker(s): {seconds[workers]:.2f}")
        busy = sum(r["seconds"] for r in got)
        print(f"concurrency (task seconds / wall seconds), {workers} worker(s): {busy / seconds[workers]:.2f}")
    print(f"speed-up 2 vs 1 workers: {seconds[1] / seconds[2]:.2f}")
    print(f"rows identical with 1 and 2 workers: {rows[1] == rows[2]}")


def study(args, out: Path):
    spec = make_spec(None, [f"g_dtod={args.spreads}", f"offset_dtod={args.offset}"], level=args.level,
                     dies=args.dies, epochs=args.epochs, finetune_epochs=args.finetune_epochs)
    t0 = time.perf_counter()
    res = run_sweep(spec, out, workers=args.workers, progress=False)
    print(f"study level: {args.level}")
    print(f"study offset_dtod V: {args.offset}")
    print(f"study rows: {res['total']} ({res['computed']} computed, {res['skipped']} stored)")
    print(f"study wall seconds: {time.perf_counter() - t0:.1f}")
    knobs = spec.knob_names()
    for s in summarize(res["rows"], knobs):
        g = f"g_dtod {s['g_dtod']:g}"
        print(f"{g} ideal accuracy: {s['ideal']:.4f}")
        print(f"{g} transferred accuracy: {s['transfer']:.4f} +- {s['transfer_std']:.4f}")
        print(f"{g} write-verified transfer accuracy: {s['verified']:.4f} +- {s['verified_std']:.4f}")
        print(f"{g} in-circuit accuracy: {s['circuit']:.4f} +- {s['circuit_std']:.4f}")
        if "finetune" in s:
            print(f"{g} transferred then fine-tuned accuracy: {s['finetune']:.4f} +- {s['finetune_std']:.4f}")
        if s["recovered"] is not None:
            print(f"{g} fraction of transfer loss recovered: {s['recovered']:.2f}")
    for p in res["plots"]:
        print(f"plot: {p}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/sweep", help="output directory")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--level", default="crossbar", help="circuit level of the study (default crossbar)")
    ap.add_argument("--spreads", default="0,0.1,0.15,0.2", help="g_dtod values of the study")
    ap.add_argument("--offset", type=float, default=0.0005, help="offset_dtod of the study, volts (default 0.5 mV)")
    ap.add_argument("--dies", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=3, help="in-circuit epochs after transfer (default 3)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    if not args.skip_speed:
        shutil.rmtree(out / "speed", ignore_errors=True)
        speed(out / "speed")
    if not args.skip_study:
        study(args, out / f"study-{args.level}")


if __name__ == "__main__":
    main()
