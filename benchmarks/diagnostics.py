"""Two-phase rule against the true-gradient baseline, with per-epoch gradient diagnostics.

Trains the same architecture from the same initial weights with ``--rule
two-phase`` and ``--rule gradient``, records the angle between nu and -dJ/dW
and the forward/feedback alignment on a fixed probe batch every epoch, and
prints ``name: value`` lines.  Runs are written to ``--out`` (plottable with
``analogprop plot``); ``--plot`` writes the figures there too.

    python benchmarks/diagnostics.py                                   # embedded digits, 64-32-10
    python benchmarks/diagnostics.py --dataset mnist --data-dir ../shared/datasets/mnist \\
        --arch 784-256-10 --train-subset 10000 --test-subset 2000 --epochs 10
"""
import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from analogprop.runs.build import build, complete
from analogprop.errors import DivergedError
from analogprop.runs.plots import plot_runs
from analogprop.training.rules import make_trainer
from analogprop.runs.directory import RunDir


class RuleResult(NamedTuple):
    records: list  # epoch records (those finished, if the rule diverged)
    seconds: float | None  # wall seconds per epoch
    dead: list | None  # classes whose output unit is at 0 on every training sample of the class
    diverged: str | None  # the divergence message, if training stopped on one


def run(cfg, out, n_train, n_test) -> RuleResult:
    cfg = complete(cfg)
    data, driver, tc = build(cfg)
    data = data.subset(n_train, n_test)
    trainer = make_trainer(cfg, driver, tc, data)
    rundir, records = RunDir(out), []
    rundir.write_config(cfg)

    def on_epoch(rec):
        records.append(rec)
        rundir.write_metrics(records)
        print(f"  [{cfg['rule']}] epoch {rec['epoch']}: train {rec['train_error']:.2%} test {rec['test_error']:.2%} "
              f"angle {rec.get('angle_nu_grad', float('nan')):.1f} align {rec['alignment']}", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        trainer.fit(data, on_epoch=on_epoch)
    except DivergedError as e:  # reported with the epochs that finished; the other rule still runs
        return RuleResult(records, None, None, str(e))
    seconds = (time.perf_counter() - t0) / len(records)
    out = driver.relax_free(data.x_train).output
    dead = [c for c in range(out.shape[1]) if np.all(out[data.y_train == c, c] <= 0)]
    return RuleResult(records, seconds, dead, None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    ap.add_argument("--data-dir")
    ap.add_argument("--arch", default=None, help="default 64-32-10 (digits), 784-256-10 (mnist)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--train-subset", type=int, default=None, help="first N training samples (default all)")
    ap.add_argument("--test-subset", type=int, default=None, help="first N test samples (default all)")
    ap.add_argument("--lrs", default="0.5,0.2", help="two-phase learning rates per layer pair")
    ap.add_argument("--gradient-lrs", default=None, help="baseline learning rates (default: same as --lrs)")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--symmetric", action="store_true", help="symmetric nudging for the two-phase rule")
    ap.add_argument("--lr-decay", type=float, default=1.0, help="learning-rate factor per epoch (both rules)")
    ap.add_argument("--lr-decay-start", type=int, default=1, help="first epoch with a decayed learning rate")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="lambda of lambda/2 ||W||^2 (both rules)")
    ap.add_argument("--linear-output", action="store_true",
                    help="unclipped output layer (Eq. 6) for both rules: the true gradient then never vanishes there")
    ap.add_argument("--probe", type=int, default=100, help="probe batch size for the diagnostics")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="default benchmarks/out/diagnostics-<dataset>")
    ap.add_argument("--plot", action="store_true", help="write PNG figures into --out")
    args = ap.parse_args(argv)
    arch = args.arch or ("64-32-10" if args.dataset == "digits" else "784-256-10")
    out = Path(args.out or f"benchmarks/out/diagnostics-{args.dataset}")
    base = {"dataset": args.dataset, "data_dir": args.data_dir, "arch": arch, "epochs": args.epochs,
            "beta": args.beta, "symmetric": args.symmetric, "probe": args.probe, "seed": args.seed,
            "linear_output": args.linear_output, "lr_decay": args.lr_decay, "lr_decay_start": args.lr_decay_start,
            "weight_decay": args.weight_decay}
    lrs = {"two-phase": [float(v) for v in args.lrs.split(",")],
           "gradient": [float(v) for v in (args.gradient_lrs or args.lrs).split(",")]}
    results = {}
    for rule in ("two-phase", "gradient"):
        results[rule] = run({**base, "rule": rule, "lrs": lrs[rule]}, out / rule, args.train_subset, args.test_subset)
    print(f"dataset: {args.dataset}")
    print(f"architecture: {arch}")
    print(f"epochs: {args.epochs}")
    print(f"output layer: {'unclipped (Eq. 6)' if args.linear_output else 'clipped to [0, 1] (Eq. 59)'}")
    for rule, (rec, sec, dead, diverged) in results.items():
        print(f"{rule} lrs: {lrs[rule]}")
        if diverged:
            print(f"{rule} diverged after {len(rec)} epochs: {diverged}")
            continue
        angles = np.array([r["angle_nu_grad"] for r in rec if "angle_nu_grad" in r])
        print(f"{rule} final train error %: {100 * rec[-1]['train_error']:.2f}")
        print(f"{rule} final test error %: {100 * rec[-1]['test_error']:.2f}")
        print(f"{rule} best test error %: {100 * min(r['test_error'] for r in rec):.2f}")
        print(f"{rule} angle nu/-dJ/dW first/max/last deg: {angles[0]:.1f}/{angles.max():.1f}/{angles[-1]:.1f}")
        print(f"{rule} angle below 90 every epoch: {bool(np.all(angles < 90))}")
        print(f"{rule} alignment first/last: {rec[0]['alignment']} / {rec[-1]['alignment']}")
        print(f"{rule} probe unconverged max: {max(r['probe_unconverged'] for r in rec):.3f}")
        print(f"{rule} output units at 0 on every training sample of their class: {dead}")
        print(f"{rule} seconds per epoch: {sec:.2f}")
        print(f"{rule} diagnostics seconds per epoch: {np.mean([r['probe_seconds'] for r in rec]):.2f}")
    if not any(r.diverged for r in results.values()):
        gap = 100 * (results["two-phase"].records[-1]["test_error"] - results["gradient"].records[-1]["test_error"])
        print(f"final test error gap two-phase minus gradient pp: {gap:+.2f}")
    if args.plot:
        for path in plot_runs([out / "two-phase", out / "gradient"], out):
            print(f"figure: {path}")


if __name__ == "__main__":
    main()
