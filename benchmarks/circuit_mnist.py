"""Training a mismatched MNIST-sized circuit with the fast circuit solver.

One or more epochs of the two-phase rule through the circuit driver on a
subset of MNIST (``--train-subset`` / ``--test-subset``), die 1 with
``g_dtod = gain_dtod = 0.02`` and offsets 1e-5 V (crossbar) or 1e-3 V
(behavioural).  Prints ``name: value`` lines: errors, unconverged
samples, wall and CPU seconds.

    python benchmarks/circuit_mnist.py --data-dir ../shared/datasets/mnist [--level crossbar]
"""
import argparse
import time

from analogprop.data import load_mnist
from analogprop.circuit.mismatch import Mismatch
from analogprop.drivers.circuit import make_circuit_driver
from analogprop.model.network import Network, parse_sizes
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="MNIST directory")
    ap.add_argument("--arch", default="784-128-10")
    ap.add_argument("--level", default="crossbar", help="behavioural or crossbar (default)")
    ap.add_argument("--train-subset", type=int, default=6000)
    ap.add_argument("--test-subset", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lrs", default="0.05,0.025", help="per layer pair (default 0.05,0.025: half of Table 1's "
                                                         "784-512-10 rates, since the crossbar moves both devices)")
    ap.add_argument("--beta", type=float, default=1.0)
    args = ap.parse_args(argv)
    data = load_mnist(args.data_dir).subset(args.train_subset, args.test_subset)
    crossbar = args.level.startswith("c") or args.level == "1"
    mismatch = Mismatch(g_dtod=0.02, gain_dtod=0.02, offset_dtod=1e-5 if crossbar else 1e-3)
    drv = make_circuit_driver(Network.create(parse_sizes(args.arch), seed=0), level=args.level, mismatch=mismatch,
                              die=1, tol=1e-5)
    tr = TwoPhaseTrainer(drv, TrainConfig(lrs=tuple(float(v) for v in args.lrs.split(",")), beta=args.beta,
                                          epochs=args.epochs))
    wall, cpu = time.perf_counter(), time.process_time()
    records = []
    tr.fit(data, on_epoch=records.append)
    for r in records:
        print(f"epoch {r['epoch']} train error: {r['train_error']:.4f}")
        print(f"epoch {r['epoch']} test error: {r['test_error']:.4f}")
        print(f"epoch {r['epoch']} unconverged free/nudged: {r['unconverged_free']}/{r['unconverged_nudged']}")
    print(f"wall seconds: {time.perf_counter() - wall:.1f}")
    print(f"cpu seconds: {time.process_time() - cpu:.1f}")


if __name__ == "__main__":
    main()
