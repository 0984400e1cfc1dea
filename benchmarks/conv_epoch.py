"""CPU seconds per training epoch of a configuration (Table 2's convolutional network by default), one BLAS thread.

Trains ``--batches`` minibatches of the configuration from its initial parameters (or from the parameters
of a run directory's checkpoint, ``--run``, to time a trained network, whose relaxations take more sweeps), evaluates
``--test`` test images and runs the probe diagnostics once, each timed in CPU seconds of this process,
and extrapolates them to one epoch of the configuration's whole training and test sets (an estimate,
stated as such):

    epoch = train s/batch * ceil(n_train / batch_size) + eval s/image * n_test + probe s

Also prints the mean sweeps per relaxation of each phase.  ``--tolerances`` instead compares solver
tolerances on the network: per tolerance, the mean sweeps of the free and the two nudged phases of the
symmetric estimate on ``--probe`` training images, and the angle of that estimate to the one at a
tolerance of 1e-7 (float64), per parameter:

    OMP_NUM_THREADS=1 python benchmarks/conv_epoch.py --data-dir DATA --run RUN --tolerances 1e-5,1e-4,1e-3

    OMP_NUM_THREADS=1 python benchmarks/conv_epoch.py --data-dir DATA
    OMP_NUM_THREADS=1 python benchmarks/conv_epoch.py --data-dir DATA --run runs/conv-table2-readout --batches 50
"""
import argparse
import datetime
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from analogprop.config.files import load_toml, merge
from analogprop.errors import AnalogpropError
from analogprop.model.gradients import angle, two_phase_estimate
from analogprop.model.relax import FastSolver
from analogprop.runs.build import build
from analogprop.runs.directory import RunDir, load_checkpoint
from analogprop.training.rules import make_trainer
from analogprop.training.trainer import one_hot


def compare_tolerances(net, data, tc, tolerances, probe):
    x, labels = data.x_train[:probe], data.y_train[:probe]
    y = one_hot(labels, net.sizes[-1])
    reference, _, _ = two_phase_estimate(net, FastSolver(tol=1e-7, max_sweeps=5000), x, y, tc.beta, tc.symmetric)
    print(f"command: {' '.join(sys.argv)}")
    print(f"date: {datetime.date.today().isoformat()}")
    for tol in tolerances:
        est, free, nudged = two_phase_estimate(net, FastSolver(tol=tol, dtype=np.float32), x, y, tc.beta, tc.symmetric)
        angles = " ".join(f"{k} {angle(est, reference, [k]):.2f}" for k in sorted(est))
        print(f"tol {tol:g}: sweeps free {free.steps.mean():.1f}, nudged "
              f"{np.mean([n.steps.mean() for n in nudged]):.1f}; angle (deg) to the tol 1e-7 estimate: {angles}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/conv-table2-readout/config.toml")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--run", help="a run directory: time its checkpoint's network instead of a fresh one")
    ap.add_argument("--batches", type=int, default=50, help="training minibatches timed (default 50)")
    ap.add_argument("--test", type=int, default=1000, help="test images timed (default 1000)")
    ap.add_argument("--tolerances", help="comma-separated solver tolerances to compare instead of timing an epoch")
    ap.add_argument("--probe", type=int, default=40, help="training images of the tolerance comparison")
    ap.add_argument("--over-relax", type=float, help="the fast solver's over-relaxation limit (default: the config's)")
    ap.add_argument("--tol", type=float, help="the fast solver's tolerance (default: the config's)")
    args = ap.parse_args(argv)
    solver = {k: v for k, v in (("over_relax", args.over_relax), ("tol", args.tol)) if v is not None}
    cfg = merge(load_toml(args.config), {"data": {"data_dir": args.data_dir}, "solver": solver}).to_flat()
    params = load_checkpoint(RunDir(args.run).checkpoint_path)[0] if args.run else None
    data, driver, tc = build(cfg, params)
    if args.tolerances:
        with threadpool_limits(1):
            compare_tolerances(driver.network, data, tc, [float(t) for t in args.tolerances.split(",")], args.probe)
        return
    trainer = make_trainer(cfg, driver, tc, data)
    n_train, n_test = len(data.y_train), len(data.y_test)
    order = np.random.default_rng(tc.seed).permutation(n_train)
    sweeps = {"free": [], "nudged": []}
    relax_free, relax_nudged, relax_symmetric = driver.relax_free, driver.relax_nudged, driver.relax_symmetric

    def counted(phase, relax):
        def run(*a, **kw):
            r = relax(*a, **kw)
            for p in (r if isinstance(r, tuple) else (r,)):
                sweeps[phase].append(float(np.mean(p.steps)))
            return r
        return run

    driver.relax_free, driver.relax_nudged = counted("free", relax_free), counted("nudged", relax_nudged)
    driver.relax_symmetric = counted("nudged", relax_symmetric)
    with threadpool_limits(1):
        c0 = time.process_time()
        for b in range(args.batches):
            idx = order[b * tc.batch_size:(b + 1) * tc.batch_size]
            trainer.step(data.x_train[idx], data.y_train[idx])
        train = (time.process_time() - c0) / args.batches
        driver.relax_free, driver.relax_nudged, driver.relax_symmetric = relax_free, relax_nudged, relax_symmetric
        c0 = time.process_time()
        trainer.evaluate(data.x_test[:args.test], data.y_test[:args.test])
        evaluate = (time.process_time() - c0) / args.test
        c0 = time.process_time()
        if trainer.diagnostics is not None:
            trainer.diagnostics(driver)
        probe = time.process_time() - c0
    n_batches = -(-n_train // tc.batch_size)
    epoch = train * n_batches + evaluate * n_test + probe
    print(f"command: {' '.join(sys.argv)}")
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"config: {args.config}{' checkpoint of ' + args.run if args.run else ' (initial parameters)'}; "
          f"arch {cfg['arch']}, batch {tc.batch_size}, {cfg['dtype']}, tol {cfg['tol']:g}, "
          f"over_relax {cfg['over_relax']:g}")
    print(f"sweeps per relaxation (mean): free {np.mean(sweeps['free']):.1f}, nudged {np.mean(sweeps['nudged']):.1f}")
    print(f"train CPU s per minibatch: {train:.4f} (measured on {args.batches} minibatches)")
    print(f"evaluation CPU s per test image: {evaluate:.6f} (measured on {args.test} images)")
    print(f"probe diagnostics CPU s: {probe:.2f}")
    print(f"estimated CPU s per epoch ({n_batches} minibatches, {n_test} test images, extrapolated): {epoch:.0f}")


if __name__ == "__main__":
    try:
        main()
    except AnalogpropError as e:
        sys.exit(f"conv_epoch: error: {e}")
