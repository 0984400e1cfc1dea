"""Command line: ``analogprop train | evaluate | ...``.

User errors (bad options, data, configuration) exit with status 2 and one
line on stderr; Ctrl-C during training finishes the current minibatch,
writes a checkpoint and exits with status 130.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from ..errors import AnalogpropError
from ..stop import STOP

COMMANDS = {}


def command(name, help, options):
    """Register ``fn(args)`` as sub-command `name`; ``options(parser)`` adds its arguments."""
    def register(fn):
        COMMANDS[name] = (fn, help, options)
        return fn
    return register


def _floats(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def out_path(text):
    """An output path option: refused when empty (it would write into the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path would write into the current directory; name one")
    return text


def add_model_options(p):
    from ..model.network import FEEDBACK_INITS

    g = p.add_argument_group("model")
    g.add_argument("--dataset", help="digits (embedded, default); mnist; idx: IDX files named as MNIST's "
                   "(train-images-idx3-ubyte[.gz] ..., e.g. Fashion-MNIST) in the --data-dir directory, checked "
                   "against its SHA256SUMS if present; npz: the --data-dir .npz file with x_train, y_train, x_test, "
                   "y_test; csv: train.csv and test.csv in the --data-dir directory, label in the first column, "
                   "optional header line; sklearn:NAME, NAME digits, iris, wine or breast_cancer. Inputs must lie "
                   "in [0, 1] (uint8 arrays are divided by 255); labels are 0..K-1")
    g.add_argument("--data-dir", help="directory of MNIST IDX files (else $ANALOGPROP_DATA or ~/.cache/analogprop/mnist)")
    g.add_argument("--download", action="store_true", default=None, help="download MNIST if missing (needs the network)")
    g.add_argument("--arch", help="layer sizes, input first, e.g. 64-32-10; convolutional: CxHxW input, "
                   "c<maps>k<kernel>[s<stride>][p<pool>] layers, then sizes, e.g. 1x28x28-c32k5p2-c64k5p2-10")
    g.add_argument("--seed", type=int, help="seed of initial weights and sample order")
    g.add_argument("--no-bias", dest="bias", action="store_false", default=None, help="no bias units")
    g.add_argument("--tied", action="store_true", default=None, help="tie feedback to forward weights (symmetric EP case)")
    g.add_argument("--feedback-init", choices=FEEDBACK_INITS,
                   help="initial feedback weights: drawn independently (default) or the transposes of the "
                        "forward ones (still untied: each then follows its own local update)")
    g.add_argument("--linear-output", action="store_true", default=None,
                   help="leave the output state unclipped (Eq. 6; the default clips every layer as Eq. 59)")
    g.add_argument("--driver", help="ideal (default), or another registered driver")
    g.add_argument("--solver", choices=["fast", "euler"], help="fixed-point solver of the ideal driver")
    g.add_argument("--tol", type=float, help="residual tolerance of a relaxation")
    g.add_argument("--max-steps", type=int, help="step/sweep limit of a relaxation")
    g.add_argument("--euler-step", type=float, help="Euler step size epsilon (Eq. 59)")
    g.add_argument("--nudge-steps", type=int,
                   help="nudged phase: this many Euler steps of --euler-step from the free fixed point "
                        "(Table 1's second-phase iterations; ideal driver; default 0: relax to the fixed point)")
    g.add_argument("--dtype", choices=["float64", "float32"], help="floating-point type of the ideal solvers")


def add_train_options(p):
    g = p.add_argument_group("training")
    g.add_argument("--beta", type=float, help="nudging strength (> 0)")
    g.add_argument("--lrs", type=_floats, help="learning rates per layer pair, input side first, e.g. 0.2,0.05")
    g.add_argument("--batch-size", type=int, help="minibatch size (default 20)")
    g.add_argument("--epochs", type=int, help="number of epochs")
    g.add_argument("--symmetric", action="store_true", default=None, help="nudge with +beta and -beta")
    g.add_argument("--random-sign", action="store_true", default=None, help="random sign of beta per minibatch")
    g.add_argument("--checkpoint-every", type=int, help="minibatches between checkpoints (0: every epoch)")
    g.add_argument("--keep-every", type=int,
                   help="keep a snapshot of the checkpoint every N epochs, to branch from ('analogprop branch'; default 0: none)")
    g.add_argument("--lr-decay", type=float, help="learning-rate factor per epoch from --lr-decay-start on (default 1)")
    g.add_argument("--lr-decay-start", type=int, help="first epoch (1-based) with a decayed learning rate (default 1)")
    g.add_argument("--weight-decay", type=float,
                   help="lambda of the regulariser lambda/2 ||W||^2 on the weights (synaptic depression -lambda W; default 0)")
    g.add_argument("--shift", type=int,
                   help="move each training image by a random offset of up to N pixels per axis (augmentation; default 0)")
    g.add_argument("--centered", action="store_true", default=None,
                   help="presynaptic rates minus their batch mean in the weight updates (centring; not in the paper)")
    g.add_argument("--optimizer", choices=["sgd", "adam"],
                   help="how estimates become steps: sgd (the paper's, default) or adam (per-synapse moments; not in the paper)")
    g.add_argument("--adam-betas", type=_floats, help="Adam's two moment decay rates (default 0.9,0.999)")
    g.add_argument("--adam-eps", type=float, help="Adam's epsilon (default 1e-8)")
    g.add_argument("--rule", choices=["two-phase", "gradient"],
                   help="two-phase (the paper's rule, default) or gradient (true-gradient baseline, ideal driver)")
    g.add_argument("--feedback-lr-factor", type=float,
                   help="factor on the feedback weights' learning rates (default 1: the paper's rule; 0: fixed feedback)")
    g.add_argument("--alignment-drift", action="store_true", default=None,
                   help="record per epoch the forward and the feedback updates' parts of each pair's alignment change")
    g.add_argument("--probe", type=int, help="probe batch size for per-epoch gradient diagnostics (0: off, default)")


CONFIG_KEYS = ["dataset", "data_dir", "download", "arch", "seed", "bias", "tied", "feedback_init", "linear_output", "driver", "solver", "tol",
               "max_steps", "euler_step", "nudge_steps", "dtype", "beta", "lrs", "batch_size", "epochs", "symmetric",
               "random_sign", "checkpoint_every", "keep_every", "lr_decay", "lr_decay_start", "weight_decay", "shift", "centered", "rule", "probe",
               "optimizer", "adam_betas", "adam_eps", "feedback_lr_factor", "alignment_drift"]


def config_from_args(args) -> dict:
    cfg = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None}
    cfg.update({k: v for k, v in vars(args).items() if k.startswith("driver_") and v is not None})
    return cfg


def _train_options(p):
    from .bench_options import add_visa_options
    from ..drivers.circuit import add_circuit_options
    from ..drivers.ngspice import add_ngspice_options

    add_model_options(p)
    add_train_options(p)
    add_visa_options(p)
    add_circuit_options(p)
    add_ngspice_options(p)
    p.add_argument("--out", type=out_path, default="runs/latest", help="run directory (default runs/latest)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoint, metrics and snapshots); default: refuse")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train", "train a network with the two-phase rule", _train_options)
def cmd_train(args):
    from ..runs.training import train

    out = Path(args.out)
    record = train(config_from_args(args), out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if record is None:
        print(f"no epoch finished yet; continue with: analogprop train --resume --out {out}")
        return
    print(f"final: train error {record['train_error']:.2%}, test error {record['test_error']:.2%}, "
          f"run directory {out}")


def _evaluate_options(p):
    p.add_argument("run", help="run directory (with config.json and checkpoint.npz)")
    p.add_argument("--dataset", help="override the run's dataset: digits, mnist, idx, npz, csv or sklearn:NAME "
                   "(as for train)")
    p.add_argument("--data-dir", help="directory of MNIST IDX files")
    p.add_argument("--json", action="store_true", help="print a JSON object")


@command("evaluate", "evaluate a run's checkpoint on its dataset", _evaluate_options)
def cmd_evaluate(args):
    from ..runs.training import evaluate

    res = evaluate(Path(args.run), dataset=args.dataset, data_dir=args.data_dir)
    print(json.dumps(res) if args.json else
          f"{res['dataset']}: train error {res['train_error']:.2%}, test error {res['test_error']:.2%}, "
          f"test cost {res['test_cost']:.4f}, unconverged {res['unconverged']}")


def _branch_options(p):
    p.add_argument("run", help="run directory trained with --keep-every")
    p.add_argument("--epoch", type=int, required=True, help="the kept epoch to branch after")
    p.add_argument("--out", type=out_path, required=True, help="new run directory")


@command("branch", "start a new run from a run's snapshot after a given epoch (resume it with other settings)",
         _branch_options)
def cmd_branch(args):
    from ..runs.directory import branch

    dst = branch(Path(args.run), args.epoch, Path(args.out))
    print(f"{dst.path}: {args.run} after epoch {args.epoch}; continue it with: analogprop train --resume --out "
          f"{dst.path} [--epochs N] [--lr-decay F --lr-decay-start E (E > {args.epoch})]")


def _epochs(text):
    """'5-12' or '5,7,9' -> the epochs (a range, not a list: it is checked against the kept ones first)."""
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            return range(a, b + 1)
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epochs as A-B or A,B,C, got {text!r}") from None


def _average_options(p):
    p.add_argument("run", help="run directory trained with --keep-every")
    p.add_argument("--epochs", type=_epochs, required=True, help="kept epochs to average, e.g. 5-12 or 10,15,20")
    p.add_argument("--out", type=out_path, required=True, help="new run directory (evaluate it with analogprop evaluate)")


@command("average", "average a run's parameters over kept snapshots (stochastic weight averaging) into a new run",
         _average_options)
def cmd_average(args):
    from ..runs.directory import average

    dst = average(Path(args.run), args.epochs, Path(args.out))
    print(f"{dst.path}: the mean of {args.run}'s parameters after epochs {sorted(set(args.epochs))}; "
          f"evaluate it with: analogprop evaluate {dst.path}")


def _export_options(p):
    p.add_argument("run", help="run directory")
    p.add_argument("--out", type=out_path, required=True, help="new run directory")
    p.add_argument("--dtype", choices=("float32", "float64"),
                   help="storage of the parameters (default: the run's solver dtype, evaluation unchanged)")


@command("export", "copy a run compactly (config, metrics, compressed checkpoint; no snapshots) "
         "to ship or archive", _export_options)
def cmd_export(args):
    from ..runs.directory import export

    dst = export(Path(args.run), Path(args.out), args.dtype)
    size = dst.checkpoint_path.stat().st_size
    print(f"{dst.path}: {args.run} exported ({size / 1e6:.1f} MB checkpoint); "
          f"evaluate it with: analogprop evaluate {dst.path}")


def _diagnose_options(p):
    p.add_argument("run", help="run directory (ideal driver)")
    p.add_argument("--probe", type=int, default=40, help="training samples in the probe batch (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the probe batch's draw")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--tol", type=float, help="relax to this residual tolerance instead of the run's")
    p.add_argument("--dtype", choices=["float32", "float64"], help="relax in this precision instead of the run's")
    p.add_argument("--max-steps", type=int, help="sweep limit of a relaxation instead of the run's")


@command("diagnose", "angles of nu and of the two-phase update to the true gradient, per parameter, "
         "for a run's checkpoint", _diagnose_options)
def cmd_diagnose(args):
    from ..runs.training import diagnose

    res = diagnose(Path(args.run), args.probe, args.seed, tol=args.tol, dtype=args.dtype, max_steps=args.max_steps)
    if args.json:
        print(json.dumps(res))
        return
    print(f"{args.run}: probe {res['probe']} samples, J {res['cost']:.4f}, unconverged {res['unconverged']:.1%}")
    print(f"{'parameter':>10} {'|-dJ/dW|':>10} {'|nu|':>10} {'angle(nu,-dJ/dW)':>17} {'angle(update,-dJ/dW)':>21}")
    for r in res["rows"]:
        print(f"{r['name']:>10} {r['grad_norm']:10.3g} {r['nu_norm']:10.3g} {r['angle_nu_grad']:17.1f} "
              f"{r['angle_update_grad']:21.1f}")


def _demo_options(p):
    p.add_argument("--out", type=out_path, default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of the ideal model (default 15)")
    p.add_argument("--circuit-epochs", type=int, default=4, help="epochs of training in ngspice (default 4)")
    p.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier demo in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("demo", "the main job: train 64-32-10 on the digits as a mismatched circuit in ngspice, "
         "compared with ideal weights deployed on it", _demo_options)
def cmd_demo(args):
    from ..runs.demo import run_demo

    run_demo(Path(args.out), epochs=args.epochs, circuit_epochs=args.circuit_epochs, progress=not args.quiet,
             overwrite=args.overwrite)


def _plot_options(p):
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (with metrics.jsonl)")
    p.add_argument("--out", type=out_path, default="plots", help="directory for the PNG files (default plots)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of the PNG files (default 150)")


@command("plot", "plot error curves, alignment and angle to the gradient of one or several runs", _plot_options)
def cmd_plot(args):
    from ..runs.plots import plot_runs

    for path in plot_runs(args.runs, Path(args.out), dpi=args.dpi):
        print(path)


def _summary_options(p):
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (with metrics.jsonl)")
    p.add_argument("--markdown", action="store_true",
                   help="print Markdown tables (errors and settings, then each pair's alignment), as on the "
                        "documentation's results page")


@command("summary", "final and best errors of one or several runs, and how each pair's alignment moved "
         "(start, end, peak, epochs it fell)", _summary_options)
def cmd_summary(args):
    from ..runs.summary import markdown_summary, summarize_runs

    print((markdown_summary if args.markdown else summarize_runs)(args.runs))


def _bench_options(p):
    from .bench_options import add_serve_options

    add_serve_options(p)


@command("bench", "lab bench tools: 'bench serve' runs the bench emulator of a profile on 127.0.0.1", _bench_options)
def cmd_bench(args):
    from ..bench.serve import serve

    serve(args.profile, args.fault, duration=args.duration, max_clients=args.max_clients)


def _sweep_options(p):
    from .sweep_options import add_sweep_options

    add_sweep_options(p)


@command("sweep", "accuracy of transferred vs in-circuit-trained weights over a grid of device-variation knobs, on Dask",
         _sweep_options)
def cmd_sweep(args):
    from ..sweep import default_workers, run_sweep
    from .sweep_options import spec_from_args, workers_from_args

    spec = spec_from_args(args)
    workers = workers_from_args(args, default_workers)
    res = run_sweep(spec, Path(args.out), workers=workers, scheduler=args.scheduler, dashboard=args.dashboard,
                    progress=not args.quiet, stop=lambda: STOP.requested, plots=not args.no_plots)
    from ..sweep.store import format_summary, summarize

    if res["rows"]:
        print(format_summary(summarize(res["rows"], spec.knob_names()), spec.knob_names()))
    print(f"{len(res['rows'])}/{res['total']} rows ({res['computed']} computed, {res['skipped']} already stored) "
          f"in {res['csv']}")
    for path in res["plots"]:
        print(path)
    if not res["complete"]:
        print("analogprop: sweep stopped; run the same command again to finish it", file=sys.stderr)


def _netlist_options(p):
    from .netlist import add_netlist_options

    add_netlist_options(p)


@command("netlist", "write a network or checkpoint on a die as a self-contained ngspice netlist", _netlist_options)
def cmd_netlist(args):
    from .netlist import write_netlist

    path = write_netlist(args)
    print(f"netlist written to {path} (run it with: ngspice -b {path})")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, as every other user error, pointing to ``--help``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_parser():
    parser = _Parser(prog="analogprop", description="Train analog learning circuits with the two-phase rule.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, (fn, help, options) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        options(p)
        p.set_defaults(func=fn)
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGINT, STOP)
    try:
        args.func(args)
    except AnalogpropError as e:
        print(f"analogprop: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("analogprop: interrupted; resume from the last checkpoint with --resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if STOP.requested else 0

