"""Command-line options of ``analogprop sweep`` and the spec they describe."""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..sweep.grid import KNOBS, make_spec, read_spec_file
from .config_options import or_none


def _list(kind):
    def parse(text):
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def add_sweep_options(p) -> None:
    from .commands import out_path

    g = p.add_argument_group("grid")
    g.add_argument("--grid-file", help="TOML/JSON sweep file: settings (as the options below, with underscores) "
                   "and a [grid] table of knob = [values]; options given here override it")
    g.add_argument("--grid", dest="grid_options", action="append", default=[], metavar="KNOB=V1,V2,...",
                   help=f"values of one knob (repeatable); knobs: {', '.join(KNOBS)}")
    g.add_argument("--bits", metavar="B1,B2,...", help="programming resolutions, same as --grid resolution_bits=...")
    g.add_argument("--dies", type=int, help="die seeds 0..N-1 per point (default 3)")
    g.add_argument("--seeds", type=_list(int), help="training seeds (initial weights, sample order), default 0")
    g.add_argument("--level", help="circuit level: behavioural (default), crossbar or vground (the virtual-ground "
                   "crossbar; knobs wire_r, wire_r_row, wire_r_col, opamp_offset, gradient, field_std)")
    g.add_argument("--circuit-spec", metavar="FILE",
                   help="sweep a circuit of your own (a circuit specification, docs/own-circuit.md) instead of a "
                   "level; knobs temperature (C) and mismatch_scale (factor on the specification's sigmas); needs "
                   "--circuit-lrs")
    v = p.add_argument_group("virtual-ground crossbar (--level vground), fixed for the whole sweep")
    v.add_argument("--tile", type=int, help="crossbar tile size in crosspoints (default 256); wire resistance "
                   "acts along each tile's wires")
    v.add_argument("--opamp-gain", type=or_none(float), metavar="X|none",
                   help="open-loop gain of the column op-amps (default 1e6); none: an exact virtual ground")
    m = p.add_argument_group("model and training (the same budget for the ideal reference and in-circuit)")
    m.add_argument("--dataset", choices=["digits", "mnist"], help="digits (embedded, default) or mnist")
    m.add_argument("--data-dir", help="directory of MNIST IDX files")
    m.add_argument("--arch", help="dense layer sizes, e.g. 64-32-10 (default)")
    m.add_argument("--train-samples", type=int, help="use the first N training samples (default all)")
    m.add_argument("--test-samples", type=int, help="use the first N test samples (default all)")
    m.add_argument("--epochs", type=int, help="epochs of both trainings (default 10)")
    m.add_argument("--finetune-epochs", type=int,
                   help="also train the transferred die in the circuit for N epochs (finetune_accuracy; default 0: off)")
    m.add_argument("--beta", type=float, help="nudging strength (default 0.5)")
    m.add_argument("--lrs", type=_list(float), help="learning rates per layer pair of the ideal reference (default 0.5,0.2)")
    m.add_argument("--circuit-lrs", type=_list(float),
                   help="learning rates of in-circuit training (default: --lrs; halved on the crossbar)")
    m.add_argument("--batch-size", type=int, help="minibatch size (default 20)")
    m.add_argument("--tol", type=float, help="relaxation tolerance on states (default 1e-5)")
    m.add_argument("--max-steps", type=int, help="sweep limit of a relaxation (default 500)")
    e = p.add_argument_group("execution")
    e.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    e.add_argument("--serial", action="store_true", help="run in this process, without Dask")
    e.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler (e.g. tcp://127.0.0.1:8786)")
    e.add_argument("--dashboard", metavar="PORT", help="serve the Dask dashboard on 127.0.0.1:PORT (needs bokeh; default off)")
    e.add_argument("--out", type=out_path, default="runs/sweep", help="sweep directory (default runs/sweep)")
    e.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    e.add_argument("--quiet", action="store_true", help="no progress bar")


SETTING_OPTIONS = ("dies", "seeds", "level", "dataset", "data_dir", "arch", "train_samples", "test_samples",
                   "epochs", "finetune_epochs", "beta", "lrs", "circuit_lrs", "batch_size", "tol", "max_steps",
                   "tile", "opamp_gain", "circuit_spec")


def spec_from_args(args):
    file_settings = read_spec_file(args.grid_file) if args.grid_file else None
    grid = list(args.grid_options) + ([f"resolution_bits={args.bits}"] if args.bits else [])
    return make_spec(file_settings, grid, **{k: getattr(args, k) for k in SETTING_OPTIONS})


def workers_from_args(args, default) -> int:
    """Worker processes of the sweep (0: serially in this process); ``default()`` when not given."""
    if args.workers is not None and (isinstance(args.workers, bool) or args.workers < 1):
        raise ConfigError(f"--workers must be a whole number >= 1 of worker processes (or --serial: none), "
                          f"got {args.workers}")
    if args.serial and args.workers is not None:
        raise ConfigError(f"--serial runs in this process and --workers {args.workers} on a Dask cluster: give one of them")
    return 0 if args.serial else (args.workers if args.workers is not None else default())
