"""``analogprop netlist``: a network or checkpoint on a die, written as a self-contained ngspice netlist."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import ConfigError, OutputError
from ..runs.directory import make_dir
from ..spice.netlist import netlist
from ..spice.user_netlist import user_netlist


def add_netlist_options(p) -> None:
    from .commands import out_path
    from .config_options import add_arguments

    p.add_argument("source", nargs="?",
                   help="run directory or checkpoint .npz (default: a fresh network of --arch and --seed)")
    p.add_argument("--arch", help="layer sizes of a fresh network (default 64-32-10)")
    p.add_argument("--seed", type=int, help="seed of a fresh network's weights (default 0)")
    p.add_argument("--dataset", choices=["digits", "mnist"], help="dataset of the tabulated samples (default: the run's)")
    p.add_argument("--data-dir", help="directory of MNIST IDX files")
    p.add_argument("--samples", type=int, default=10,
                   help="first N test samples tabulated as inputs and targets (default 10; 0: one all-zero input)")
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="user subcircuit/model file copied into the netlist (no .control, shell or nested includes)")
    p.add_argument("--title", help="circuit title (sanitised)")
    p.add_argument("--out", type=out_path, default="circuit.cir", help="netlist file to write (default circuit.cir; - writes it to standard output)")
    add_arguments(p, sections=("circuit",))


def _source(path):
    """(config, parameters) of a run directory or checkpoint file."""
    from ..runs.build import complete
    from ..runs.directory import RunDir, load_checkpoint

    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        params, _ = load_checkpoint(run.checkpoint_path)
        return run.read_config(), params
    if not path.exists():
        raise ConfigError(f"{path}: no such run directory or checkpoint")
    params, meta = load_checkpoint(path)
    if not isinstance(meta.get("config"), dict):
        raise ConfigError(f"{path}: checkpoint has no run configuration")
    cfg = dict(meta["config"])
    try:
        complete(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: its run configuration: {e}") from None
    return cfg, params


def circuit_of(cfg: dict, params=None):
    """Compiled circuit of a configuration (its circuit section, whatever its driver); ``params`` are a
    checkpoint's (circuit parameters for a circuit or ngspice run, network parameters otherwise)."""
    from ..config import from_flat
    from ..drivers.circuit import make_circuit_driver
    from ..model.network import Network, parse_sizes
    from ..runs.build import circuit_settings

    run = from_flat(cfg)
    net = Network.create(parse_sizes(run.model.arch), seed=run.seed, bias=run.model.bias, tied=run.model.tied)
    driver = make_circuit_driver(net, **circuit_settings(run))
    if params is not None:
        driver.set_parameters(params) if run.driver.name in ("circuit", "ngspice") else driver.deploy(params)
    return driver.circuit, run.to_flat()


def user_circuit_of(cfg: dict, params=None):
    """The :class:`~analogprop.circuit.tabulated.UserNetwork` of a configuration with ``--circuit-spec``;
    ``params`` are a checkpoint's (programming values of a run on it, or network weights otherwise)."""
    from ..circuit.tabulated import UserNetwork
    from ..circuit.user_spec import load_spec
    from ..config import from_flat
    from ..model.network import Network, parse_sizes

    run = from_flat(cfg)
    c = run.circuit
    spec = load_spec(c.circuit_spec)
    spec = spec if c.temperature is None else spec.at_temperature(c.temperature)
    sizes = parse_sizes(run.model.arch)
    net = UserNetwork.build(spec, sizes, c.die, seed=run.seed)
    if params is None:
        params = Network.create(sizes, seed=run.seed, bias=run.model.bias, tied=run.model.tied).params
    own = {a.name for a in net.arrays}
    net.program({k: v for k, v in params.items() if k in own} if own & set(params) else net.programs_from_weights(params))
    return net, run.to_flat()


def samples(cfg: dict, n: int):
    """Inputs and one-hot targets of the first n test samples (n = 0: one all-zero input)."""
    from ..runs.build import check_fit
    from ..data import load_dataset
    from ..model.network import parse_sizes

    sizes = parse_sizes(cfg["arch"])
    if n < 0:
        raise ConfigError(f"--samples must be >= 0, got {n}")
    if n == 0:
        return np.zeros((1, sizes[0])), np.zeros((1, sizes[-1]))
    data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg.get("download", False))
    check_fit(sizes, data)
    x, labels = data.x_test[:n], data.y_test[:n]
    return x, np.eye(sizes[-1])[labels]


def write_netlist(args) -> Path | None:
    cfg, params = _source(args.source) if args.source else ({}, None)
    if args.source and (args.arch or args.seed is not None):
        raise ConfigError("--arch and --seed describe a fresh network; they cannot be combined with a run or checkpoint")
    for key in ("arch", "seed", "dataset", "data_dir"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.update({k: v for k, v in vars(args).items() if k.startswith("driver_") and v is not None})
    user = cfg.get("driver_circuit_spec") is not None
    if user and args.include:
        raise ConfigError("--include adds to the built-in circuit; with --circuit-spec the libraries come from the "
                          "specification")
    circuit, cfg = user_circuit_of(cfg, params) if user else circuit_of(cfg, params)
    x, y = samples(cfg, args.samples)
    title = args.title or (Path(args.source).stem if args.source else "analogprop")
    text = user_netlist(circuit, x, y, title=title) if user else netlist(circuit, x, y, title=title,
                                                                         includes=args.include)
    if args.out == "-":
        sys.stdout.write(text)
        return None
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"cannot write the netlist to {out}: it is a directory, not a file")
    make_dir(out.parent)
    try:
        out.write_text(text)
    except OSError as e:
        raise OutputError.of(out, e) from None
    return out
