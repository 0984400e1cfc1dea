"""How well a linear readout can classify a conv run's features, with and without a pooling.

Feeds the data forward (no feedback) through the trained layers below the
output, as trained and, given ``--pair``, with that pair's pooling removed
(ConvNetwork.without_pooling), and fits a ridge least-squares readout to the
one-hot targets for each regularisation ``--lambdas``.  The errors estimate
what training only the output pair can reach (not a bound: the EP output layer
sees the feedback-settled states), and so show whether removing
a pooling is worth its p^2 wider output layer:

    python experiments/conv-frozen-readout/conv_readout.py runs/conv_mnist-outonly-decay-avg1-6 --pair 1

``--fresh ARCH`` reads the features of an untrained network instead (random
features), to see what training the conv layers adds:

    python experiments/conv-frozen-readout/conv_readout.py --fresh 1x28x28-c32k5p2-c64k5p2-10 --data-dir ../shared/datasets/mnist --pair 1

``--relaxed`` reads the features where the network itself reads them out: the top hidden layer's rates at
the free fixed point (Eq. 6-8 with feedback, the run's solver), of the run as trained and of the same run's
initial parameters (its seed), so that the two readouts compare what training the conv layers added:

    python experiments/conv-frozen-readout/conv_readout.py experiments/conv-table2-fast/run --relaxed --data-dir ../shared/datasets/mnist
"""
import argparse
import sys
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from analogprop.runs.build import build, load_run
from analogprop.runs.directory import RunDir
from analogprop.model.conv_network import ConvNetwork
from analogprop.data import load_dataset
from analogprop.model.dynamics import rho
from analogprop.errors import AnalogpropError


def features(net, x, batch: int = 500) -> np.ndarray:
    """States of the layer below the output when the input is fed forward only (Eq. 6-8 without feedback)."""
    out = []
    for i in range(0, len(x), batch):
        r = x[i:i + batch]
        for k in range(1, net.n_layers):
            r = rho(net.drive(k, r, None))
        out.append(r)
    return np.concatenate(out)


def relaxed_features(driver, x, batch: int = 500) -> np.ndarray:
    """Rates of the layer below the output at the free fixed point (the driver's solver)."""
    return np.concatenate([rho(driver.relax_free(x[i:i + batch]).states[-2]) for i in range(0, len(x), batch)])


def ridge_errors(f_train, y_train, f_test, y_test, lambdas) -> list[tuple[float, float, float]]:
    """(lambda, train error %, test error %) of ridge readouts (with a bias) fitted to one-hot targets."""
    a = np.hstack([f_train, np.ones((len(f_train), 1))])
    gram, rhs = a.T @ a, a.T @ np.eye(int(y_train.max()) + 1)[y_train]
    t = np.hstack([f_test, np.ones((len(f_test), 1))])
    rows = []
    for lam in lambdas:
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        rows.append((lam, 100 * np.mean((a @ w).argmax(1) != y_train), 100 * np.mean((t @ w).argmax(1) != y_test)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("run", nargs="?", help="run directory of a convolutional network")
    source.add_argument("--fresh", metavar="ARCH", help="an untrained network of this architecture (seed 0)")
    ap.add_argument("--dataset", choices=("mnist", "digits"), default="mnist", help="data of --fresh")
    ap.add_argument("--data-dir", help="MNIST directory, for --fresh (and --relaxed, if not the run's)")
    ap.add_argument("--pair", type=int, help="also read out with the pooling of this conv pair removed")
    ap.add_argument("--relaxed", action="store_true",
                    help="features at the free fixed point, as trained and at the run's initial parameters")
    ap.add_argument("--lambdas", default="0.01,1,10,100", help="ridge regularisations, comma-separated")
    args = ap.parse_args(argv)
    try:
        if args.relaxed:
            if args.fresh or args.pair is not None:
                raise ValueError("--relaxed reads a run's features: give a run directory and no --pair")
            data, trained, _, _ = load_run(args.run, data_dir=args.data_dir)
            cfg = RunDir(args.run).read_config() | ({"data_dir": args.data_dir} if args.data_dir else {})
            readers = {"as trained, at the free fixed point (": partial(relaxed_features, trained),
                       "initial parameters, at the free fixed point (": partial(relaxed_features, build(cfg)[1])}
        else:
            if args.fresh:
                data, net = load_dataset(args.dataset, args.data_dir), ConvNetwork.create(args.fresh)
            else:
                data, driver, _, _ = load_run(args.run)
                net = driver.network
            nets = {"untrained" if args.fresh else "as trained": net}
            if args.pair is not None:
                nets["without pooling"] = net.without_pooling(args.pair)
            readers = {f"{name} ({n.arch}, ": partial(features, n) for name, n in nets.items()}
        lambdas = [float(v) for v in args.lambdas.split(",")]
    except (AnalogpropError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with threadpool_limits(1):
        for label, read in readers.items():
            f_train, f_test = read(data.x_train), read(data.x_test)
            for lam, train, test in ridge_errors(f_train, data.y_train, f_test, data.y_test, lambdas):
                print(f"{label}{f_train.shape[1]} features), lambda {lam:g}: "
                      f"train error {train:.2f}%, test error {test:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
