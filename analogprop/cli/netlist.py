"""``analogprop netlist``: a network or checkpoint on a die, written as a self-contained ngspice netlist."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, OutputError
from ..runs.directory import make_dir
from ..spice.netlist import netlist


def add_netlist_options(p) -> None:
    from .commands import out_path
    from ..drivers.circuit import add_circuit_options

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
    p.add_argument("--out", type=out_path, default="circuit.cir", help="netlist file to write (default circuit.cir)")
    add_circuit_options(p)


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
    """Compiled circuit of a configuration; ``params`` are a checkpoint's (circuit or network parameters)."""
    from ..runs.build import complete
    from ..drivers.circuit import from_config
    from ..drivers.ngspice import OWN_KEYS
    from ..model.network import Network, parse_sizes

    on_circuit = cfg.get("driver") in ("circuit", "ngspice")
    cfg = complete({k: v for k, v in cfg.items() if k not in OWN_KEYS and k != "driver"})
    net = Network.create(parse_sizes(cfg["arch"]), seed=cfg["seed"], bias=cfg["bias"], tied=cfg["tied"])
    driver = from_config(cfg, net)
    if params is not None:
        driver.set_parameters(params) if on_circuit else driver.deploy(params)
    return driver.circuit, cfg


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


def write_netlist(args) -> Path:
    cfg, params = _source(args.source) if args.source else ({}, None)
    if args.source and (args.arch or args.seed is not None):
        raise ConfigError("--arch and --seed describe a fresh network; they cannot be combined with a run or checkpoint")
    for key in ("arch", "seed", "dataset", "data_dir"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.update({k: v for k, v in vars(args).items() if k.startswith("driver_") and v is not None})
    circuit, cfg = circuit_of(cfg, params)
    x, y = samples(cfg, args.samples)
    title = args.title or (Path(args.source).stem if args.source else "analogprop")
    text = netlist(circuit, x, y, title=title, includes=args.include)
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"cannot write the netlist to {out}: it is a directory, not a file")
    make_dir(out.parent)
    try:
        out.write_text(text)
    except OSError as e:
        raise OutputError.of(out, e) from None
    return out
