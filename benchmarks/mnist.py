"""MNIST end to end (Appendix C, Table 1, Fig. 3): train, checkpoint, metrics, plots.

Trains an untied network with the two-phase rule (Eq. 56) on MNIST through
the ideal driver, writes into ``--out`` a run directory that ``analogprop
evaluate`` and ``examples/evaluate_mnist_checkpoint.py`` read
(``config.json``, ``checkpoint.npz`` after every epoch, ``metrics.jsonl`` /
``metrics.csv``), the figures ``errors.png`` (train/test error per epoch)
and ``alignment.png`` (Fig. 3 right) and prints ``name: value`` lines.
``--resume`` continues an interrupted run from its checkpoint (and may
change the learning-rate schedule of the epochs still to come).

    python benchmarks/mnist.py --data-dir ../shared/datasets/mnist --arch 784-512-512-10 \\
        --lrs 0.4,0.1,0.01 --beta 1.0 --tol 1e-4 --dtype float32 --epochs 40 --out benchmarks/out/mnist2
"""
import argparse
import sys
import time

import numpy as np

from threadpoolctl import threadpool_limits

from analogprop.runs.build import build, complete
from analogprop.errors import AnalogpropError
from analogprop.model.network import FEEDBACK_INITS
from analogprop.runs.plots import plot_runs
from analogprop.runs.directory import RunDir, load_checkpoint, load_optimizer_state, transplant
from analogprop.runs.training import resumed_config
from analogprop.training.trainer import TrainState, TwoPhaseTrainer


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="MNIST IDX directory (else $ANALOGPROP_DATA or ~/.cache/analogprop/mnist)")
    ap.add_argument("--arch", default="784-512-512-10")
    ap.add_argument("--lrs", default="0.4,0.1,0.01", help="learning rates per layer pair, input side first")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--symmetric", action="store_true", help="nudge with +beta and -beta")
    ap.add_argument("--random-sign", action="store_true", help="random sign of beta per minibatch (needs beta < 1)")
    ap.add_argument("--centered", action="store_true",
                    help="presynaptic rates minus their batch mean in the weight updates (centring; not in the paper)")
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                    help="sgd (the paper's) or adam (per-synapse moments; not in the paper)")
    ap.add_argument("--tol", type=float, default=1e-4, help="residual tolerance of each relaxation")
    ap.add_argument("--max-steps", type=int, default=500, help="sweep limit of a relaxation")
    ap.add_argument("--nudge-steps", type=int, help="nudged phase: this many Euler steps from the free fixed point "
                    "(Table 1's second-phase iterations; default 0: relax to the fixed point)")
    ap.add_argument("--euler-step", type=float, help="Euler step of --nudge-steps (default 0.5)")
    ap.add_argument("--feedback-lr-factor", type=float,
                    help="factor on the feedback weights' learning rates (default 1: the paper's rule; 0: fixed feedback)")
    ap.add_argument("--alignment-drift", action="store_true",
                    help="record per epoch the forward and the feedback updates' parts of each pair's alignment change")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--lr-decay", type=float, help="learning-rate factor per epoch from --lr-decay-start on (default 1)")
    ap.add_argument("--lr-decay-start", type=int, help="first epoch (1-based) with a decayed learning rate")
    ap.add_argument("--weight-decay", type=float, help="lambda of lambda/2 ||W||^2 on the weights (default 0)")
    ap.add_argument("--shift", type=int, help="random translation of each training image by up to N pixels (default 0)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-subset", type=int, help="first N training samples (default all 60,000)")
    ap.add_argument("--test-subset", type=int, help="first N test samples (default all 10,000)")
    ap.add_argument("--out", default="benchmarks/out/mnist", help="run directory")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1: batch-20 products gain little)")
    ap.add_argument("--keep-every", type=int, help="keep a snapshot every N epochs (for analogprop branch)")
    ap.add_argument("--feedback-init", choices=FEEDBACK_INITS, default="random",
                    help="initial feedback weights: independent (default) or the forward ones transposed (untied)")
    ap.add_argument("--init", help="start from the parameters of this checkpoint (.npz), e.g. to time trained weights")
    ap.add_argument("--init-matching", help="take from this checkpoint every parameter whose name and shape match "
                    "the architecture (e.g. trained layers of a smaller net); the others start fresh")
    return ap.parse_args(argv)


def _drift(rec) -> str:
    if "alignment_drift_forward" not in rec:
        return ""
    return (f"drift forward {[round(a, 4) for a in rec['alignment_drift_forward']]} "
            f"feedback {[round(a, 4) for a in rec['alignment_drift_feedback']]} ")


def run(args) -> tuple[list[dict], dict, dict]:
    """Train per ``args``; returns the epoch records (all of them, also those of a resumed run),
    the run's configuration and the final checkpoint's errors on the training set."""
    rundir = RunDir(args.out)
    cfg = {"dataset": "mnist", "data_dir": args.data_dir, "arch": args.arch,
           "lrs": [float(v) for v in args.lrs.split(",")], "beta": args.beta, "symmetric": args.symmetric,
           "centered": args.centered, "optimizer": args.optimizer,
           "random_sign": args.random_sign, "tol": args.tol, "max_steps": args.max_steps, "dtype": args.dtype,
           "nudge_steps": args.nudge_steps, "euler_step": args.euler_step,
           "batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed,
           "lr_decay": args.lr_decay, "lr_decay_start": args.lr_decay_start, "weight_decay": args.weight_decay,
           "shift": args.shift, "keep_every": args.keep_every, "feedback_init": args.feedback_init,
           "alignment_drift": args.alignment_drift, "feedback_lr_factor": args.feedback_lr_factor}
    subsets = (args.train_subset, args.test_subset)
    state, params, records = None, None, []
    if args.init:
        params, _ = load_checkpoint(args.init)
    if args.resume:
        params, meta = load_checkpoint(rundir.checkpoint_path)
        subsets = tuple(meta.get("subsets", (None, None)))
        state = TrainState.from_dict(meta["state"])
        cfg = resumed_config(rundir.read_config(), cfg, state)
        records = rundir.metrics()[:state.epoch]
    cfg = complete(cfg)
    data, driver, tc = build(cfg, params)
    if args.init_matching and not args.resume:
        params, taken = transplant(driver.get_parameters(), load_checkpoint(args.init_matching)[0])
        driver.set_parameters(params)
        print(f"parameters taken from {args.init_matching}: {', '.join(taken) or 'none'}", file=sys.stderr)
    data = data.subset(*subsets)
    rundir.write_config(cfg)
    trainer = TwoPhaseTrainer(driver, tc)
    if args.resume:
        trainer.optimizer.load_state_dict(load_optimizer_state(rundir.checkpoint_path))

    cpu = {"start": time.process_time(), "eval": 0.0}
    evaluate = trainer.evaluate

    def timed_evaluate(*a, **k):
        t = time.process_time()
        out = evaluate(*a, **k)
        cpu["eval"] += time.process_time() - t
        return out

    trainer.evaluate = timed_evaluate

    def on_epoch(rec):  # CPU seconds of this process: the wall time on an otherwise idle core
        rec["cpu_seconds"] = time.process_time() - cpu["start"]
        rec["cpu_eval_seconds"] = cpu["eval"]
        cpu["start"], cpu["eval"] = time.process_time(), 0.0
        records.append(rec)
        rundir.write_metrics(records)
        print(f"epoch {rec['epoch']}: train error {rec['train_error']:.2%} test error {rec['test_error']:.2%} "
              f"alignment {[round(a, 3) for a in rec['alignment']]} "
              f"{_drift(rec)}"
              f"{rec['train_seconds']:.1f}+{rec['eval_seconds']:.1f}s (cpu {rec['cpu_seconds']:.1f}s, of which eval {rec['cpu_eval_seconds']:.1f}s)", file=sys.stderr, flush=True)

    def checkpoint(st):
        rundir.save(driver, st, {"config": cfg, "subsets": list(subsets)}, tc.keep_every, trainer.optimizer.state_dict())

    with driver:
        trainer.fit(data, state, on_checkpoint=checkpoint, on_epoch=on_epoch)
        # the running training error mixes weights of a whole epoch; this is the final model's
        final = trainer.evaluate(data.x_train, data.y_train)
    return records, cfg, {"errors": round(final["error"] * len(data.y_train)), "samples": len(data.y_train)}


def main(argv=None):
    args = parse_args(argv)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with threadpool_limits(args.threads):
            records, cfg, final = run(args)
        figures = plot_runs([args.out], args.out)
    except AnalogpropError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = records[-1]
    epoch_s = [r["train_seconds"] + r["eval_seconds"] for r in records]
    print(f"architecture: {cfg['arch']}")
    print(f"settings: lrs {cfg['lrs']}, beta {cfg['beta']}{' symmetric' if cfg['symmetric'] else ''}{' centered' if cfg['centered'] else ''}"
          f"{', nudged phase ' + str(cfg['nudge_steps']) + ' Euler steps of ' + str(cfg['euler_step']) if cfg['nudge_steps'] else ''}, optimizer {cfg['optimizer']}, "
          f"{'feedback learning-rate factor ' + str(cfg['feedback_lr_factor']) + ', ' if cfg['feedback_lr_factor'] != 1 else ''}"
          f"lr decay {cfg['lr_decay']} from epoch {cfg['lr_decay_start']}, weight decay {cfg['weight_decay']}")
    print(f"epochs: {last['epoch']}")
    print(f"final train error %: {100 * last['train_error']:.2f}")
    print(f"checkpoint train error %: {100 * final['errors'] / final['samples']:.3f} "
          f"({final['errors']} of {final['samples']})")
    print(f"final test error %: {100 * last['test_error']:.2f}")
    print(f"best test error %: {100 * min(r['test_error'] for r in records):.2f}")
    if "alignment_start" in records[0]:
        print(f"alignment before training: {[round(a, 4) for a in records[0]['alignment_start']]}")
    print(f"alignment first/last: {records[0]['alignment']} / {last['alignment']}")
    if "alignment_drift_forward" in last:
        for part in ("forward", "feedback"):
            total = np.sum([r[f"alignment_drift_{part}"] for r in records], axis=0)
            print(f"alignment drift from {part} updates, all epochs: {[round(float(a), 4) for a in total]}")
    print(f"unconverged free/nudged last epoch: {last['unconverged_free']}/{last['unconverged_nudged']}")
    print(f"seconds per epoch (train+eval) mean: {sum(epoch_s) / len(epoch_s):.1f}")
    cpu_s = [r["cpu_seconds"] for r in records if "cpu_seconds" in r]
    if cpu_s:
        print(f"cpu seconds per epoch (train+eval) mean: {sum(cpu_s) / len(cpu_s):.1f}")
    print(f"wall seconds this invocation: {time.perf_counter() - t0:.1f}")
    print(f"cpu seconds this invocation: {time.process_time() - c0:.1f}")
    print(f"run directory: {args.out}")
    for path in figures:
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
