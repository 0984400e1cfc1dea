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

from ..errors import AnalogpropError, ConfigError
from ..stop import STOP

COMMANDS = {}


def command(name, help, options):
    """Register ``fn(args)`` as sub-command `name`; ``options(parser)`` adds its arguments."""
    def register(fn):
        COMMANDS[name] = (fn, help, options)
        return fn
    return register


def out_path(text):
    """An output path option: refused when empty (it would write into the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path would write into the current directory; name one")
    return text


def _train_options(p):
    from .config_options import add_arguments

    add_arguments(p, config_file=True)
    g = p.add_argument_group("run")
    g.add_argument("--out", type=out_path, default="runs/latest", help="run directory (default runs/latest)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its saved configuration; options "
                        "given (and --config's settings) may only change epochs, the checkpoint and snapshot "
                        "intervals, the learning-rate schedule of epochs to come and data/file locations")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoint, metrics and snapshots); default: refuse")
    start = g.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CHECKPOINT",
                       help="start a new run from this checkpoint's (.npz, e.g. RUN/checkpoint.npz) parameters "
                            "instead of fresh ones; with zero learning rates for some pairs (--lrs 0,0,0.01) "
                            "those pairs stay frozen")
    start.add_argument("--init-matching", metavar="CHECKPOINT",
                       help="take from this checkpoint every parameter whose name and shape match the architecture "
                            "(e.g. the trained layers of a smaller network); the others start fresh")
    g.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: the batch-20 products of the paper's runs gain little from more)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train", "train a network with the two-phase rule", _train_options)
def cmd_train(args):
    from threadpoolctl import threadpool_limits

    from ..runs.training import train
    from .config_options import config_from_args, given_from_args

    if args.threads < 1:
        raise ConfigError(f"--threads must be a whole number >= 1, got {args.threads}")
    out = Path(args.out)
    if args.resume and (args.init or args.init_matching):
        raise ConfigError("--resume continues from the run's own checkpoint; --init and --init-matching start a "
                          "new run: give one of them")
    # a resumed run keeps its saved settings: pass only the ones given, not the defaults
    cfg = given_from_args(args) if args.resume else config_from_args(args).to_flat()
    with threadpool_limits(args.threads):
        record = train(cfg, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite,
                       init=args.init, init_matching=args.init_matching)
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
    from ..sweep.store import summary_table

    if res["rows"]:
        print(summary_table(res["rows"], spec.knob_names()))
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
    if path is not None:
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

