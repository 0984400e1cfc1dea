"""Two-phase training of a run's output pair alone, the layers below frozen, on their cached fixed points.

With the output pair's feedback weights at zero, the layers below the output no longer depend on it: their
free and nudged fixed points are the same and are computed once per image, and the feedback update
``(h_L^beta - h_L^0) rho(h_out)^T`` (Eq. 56) is zero, so the feedback stays zero.  The two-phase rule with
learning rates (0, ..., 0, lr) is then exactly the rule on a one-pair network whose input is ``rho(h_L)``.
This script trains that network with the same trainer (minutes instead of hours for a conv net, whose every
relaxation otherwise repeats the frozen layers'), writes the output pair back into the run's network and
evaluates the result with the run's own solver (recorded as ``network_test_error`` of the last epoch):

    python experiments/conv-frozen-readout/frozen_readout.py experiments/conv-frozen-readout/records/conv_unpool_scratch --lr 0.002 --epochs 30 \\
        --lr-decay 0.9 --lr-decay-start 11 --out runs/conv_frozen_readout

The settled features are cached in ``OUT/features.npz`` or ``--features`` (keyed by the frozen parameters
and the solver) and reused by a rerun with other rates.  ``OUT`` is a run directory (``analogprop evaluate OUT``).
"""
import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from analogprop.runs.build import load_run
from analogprop.data import Dataset
from analogprop.drivers.ideal import IdealDriver
from analogprop.model.dynamics import rho
from analogprop.errors import AnalogpropError, ConfigError
from analogprop.model.network import Network
from analogprop.runs.directory import RunDir, save_checkpoint
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def output_pair_names(network) -> tuple[str, str, str]:
    """Forward, feedback and bias parameter names of the pair below the output."""
    k = network.n_layers - 1
    return f"fwd{k}", f"bwd{k}", f"bias{k + 1}"


def frozen_features(driver, x, batch: int = 500) -> np.ndarray:
    """rho of the settled layer below the output, per image (the output's feedback must be zero)."""
    return np.concatenate([rho(driver.relax_free(x[i:i + batch]).states[-2]) for i in range(0, len(x), batch)])


def readout_network(network) -> Network:
    """A one-pair network holding ``network``'s output pair (its input: the frozen features)."""
    fwd, _, bias = output_pair_names(network)
    net = Network.create((network.sizes[-2], network.sizes[-1]), bias=bias in network.params)
    net.params = {"fwd0": np.array(network.params[fwd], dtype=float)}
    if bias in network.params:
        net.params["bias1"] = np.array(network.params[bias], dtype=float)
    return net.validate()


def write_back(network, readout: Network) -> None:
    """The readout's trained forward weights and biases into ``network``'s output pair."""
    fwd, _, bias = output_pair_names(network)
    network.params[fwd] = readout.params["fwd0"].copy()
    if bias in network.params:
        network.params[bias] = readout.params["bias1"].copy()


def cached_features(path: Path, key: str, driver, data) -> tuple[np.ndarray, np.ndarray]:
    if path.exists():
        with np.load(path) as f:
            if str(f["key"]) == key and len(f["train"]) == len(data.x_train) and len(f["test"]) == len(data.x_test):
                return f["train"], f["test"]
    t0 = time.process_time()
    train, test = frozen_features(driver, data.x_train), frozen_features(driver, data.x_test)
    print(f"features: {train.shape[1]} per image, {time.process_time() - t0:.1f} s CPU", flush=True)
    np.savez(path, key=key, train=train, test=test)
    return train, test


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run directory whose layers below the output stay frozen")
    ap.add_argument("--out", required=True, help="run directory for the result")
    ap.add_argument("--lr", type=float, required=True, help="learning rate of the output pair")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr-decay", type=float, default=1.0)
    ap.add_argument("--lr-decay-start", type=int, default=1)
    ap.add_argument("--beta", type=float, help="default: the run's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", help="cache of the settled features (default: OUT/features.npz)")
    ap.add_argument("--data-dir")
    ap.add_argument("--train-subset", type=int)
    ap.add_argument("--test-subset", type=int)
    args = ap.parse_args(argv)
    try:
        data, driver, tc, _ = load_run(args.run, data_dir=args.data_dir)
        data = data.subset(args.train_subset, args.test_subset)
        network = driver.network
        if network.n_layers < 2:
            raise ConfigError(f"{args.run} has no hidden layer to freeze")
        out = RunDir(args.out)
        out.path.mkdir(parents=True, exist_ok=True)
        cfg = RunDir(args.run).read_config()
        config = TrainConfig(beta=args.beta or tc.beta, lrs=(args.lr,), batch_size=tc.batch_size, epochs=args.epochs,
                             seed=args.seed, lr_decay=args.lr_decay, lr_decay_start=args.lr_decay_start)
        bwd = output_pair_names(network)[1]
        network.params[bwd] = np.zeros_like(network.params[bwd])  # before settling: see the module docstring
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(network.params[k]).tobytes()
                                         for k in sorted(network.params) if k not in output_pair_names(network)))
        key = f"{digest.hexdigest()} tol={cfg.get('tol')} dtype={cfg.get('dtype')}"
    except (AnalogpropError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with threadpool_limits(1):
        f_train, f_test = cached_features(Path(args.features or out.path / "features.npz"), key, driver, data)
        readout = readout_network(network)
        trainer = TwoPhaseTrainer(IdealDriver(readout, driver.solver), config)
        features = Dataset("features", f_train, data.y_train, f_test, data.y_test)

        records = []

        def on_epoch(rec):
            records.append(rec)
            print(f"epoch {rec['epoch']}: train error {100 * rec['train_error']:.2f}% "
                  f"test error {100 * rec['test_error']:.2f}% ({rec['train_seconds']:.1f} s)", flush=True)

        state = trainer.fit(features, on_epoch=on_epoch)
        write_back(network, readout)
        t0 = time.process_time()
        test = TwoPhaseTrainer(driver, tc).evaluate(data.x_test, data.y_test)
        print(f"network test error: {100 * test['error']:.2f}% "
              f"(relaxed by the run's solver, {time.process_time() - t0:.1f} s CPU)")
        records[-1]["network_test_error"] = test["error"]
    lrs = [0.0] * (network.n_layers - 1) + [args.lr]
    out.write_config({**cfg, "lrs": lrs, "epochs": args.epochs, "seed": args.seed, "beta": config.beta,
                      "lr_decay": args.lr_decay, "lr_decay_start": args.lr_decay_start})
    out.write_metrics(records)
    save_checkpoint(out.checkpoint_path, network.params,
                    {"state": state.to_dict(), "frozen_readout_of": str(args.run),
                     "subsets": [args.train_subset, args.test_subset]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
