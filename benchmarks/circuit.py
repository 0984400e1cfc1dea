"""Fast circuit solver: operating points per second of mismatched circuits, both levels.

For each architecture and level: compile Glorot weights onto die 1 with the
``--g-dtod``/``--gain-dtod``/offset spreads (offsets 1e-3 V behavioural,
1e-5 V crossbar, whose buffers amplify them by unit_gain), clamped nodes;
solve the free and then the nudged (beta 0.5, from the free point)
operating points of a batch, and report operating points per second
(free + nudged points / time), sweeps, Newton use and unconverged samples,
next to the ideal fixed-point solver on the same weights and inputs.  Then
one epoch of training on the embedded digits through the circuit driver
and through the ideal driver.  Batches: 1000 / 500 / 100 samples for
64-32-10 / 784-128-128-10 / 784-512-512-10 (the last only without
``--quick``).  Inputs: MNIST test images when
``--data-dir`` is given (784 inputs), else sparse random images.
Prints ``name: value`` lines; ``--quick`` uses small batches (about 30 s).

    python benchmarks/circuit.py [--quick] [--data-dir ../shared/datasets/mnist]
"""
import argparse
import time

import numpy as np

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.solver import CircuitSolver
from analogprop.data import load_digits
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ideal import IdealDriver
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def inputs(args, n_in, n, n_out):
    rng = np.random.default_rng(0)
    if n_in == 784 and args.data_dir:
        from analogprop.data import load_mnist

        d = load_mnist(args.data_dir)
        return d.x_test[:n], np.eye(10)[d.y_test[:n]]
    if n_in == 64:  # the embedded digits, all 1797 images
        d = load_digits()
        x, labels = np.concatenate([d.x_train, d.x_test])[:n], np.concatenate([d.y_train, d.y_test])[:n]
        return x, np.eye(10)[labels]
    x = rng.uniform(0, 1, (n, n_in)) * (rng.uniform(0, 1, (n, n_in)) < 0.2)
    return x, np.eye(n_out)[rng.integers(0, n_out, n)]


def timed(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def solver_rows(args, arch, n):
    net = Network.create(arch, seed=0)
    x, y = inputs(args, arch[0], n, arch[-1])
    n = len(x)
    name = "-".join(map(str, arch))
    print(f"{name} samples: {n}")
    ideal = FastSolver(tol=args.tol)

    def run_ideal():
        f = ideal.solve(net, x)
        return f, ideal.solve(net, x, y, 0.5, start=f.states)

    t, _ = timed(run_ideal, args.repeat)
    print(f"{name} ideal op/s: {2 * n / t:.0f}")
    for level in ("behavioural", "crossbar"):
        mm = Mismatch(g_dtod=args.g_dtod, gain_dtod=args.gain_dtod,
                      offset_dtod=1e-3 if level == "behavioural" else 1e-5)
        c = compile_circuit(arch, net.params, level, mm, die=1, clamp=True)
        solver = CircuitSolver(tol=args.tol / max(c.unit_gain))

        def run():
            f = solver.solve(c, x)
            return f, solver.solve(c, x, y, 0.5, start=f.states)

        t, (f, b) = timed(run, args.repeat)
        print(f"{name} {level} op/s: {2 * n / t:.0f}")
        print(f"{name} {level} steps free/nudged (max): {f.steps.max()}/{b.steps.max()}")
        print(f"{name} {level} unconverged: {f.n_unconverged + b.n_unconverged} of {2 * n}")


def training_rows(args):
    data = load_digits()
    if args.quick:
        data = data.subset(600, 300)
    cfg = TrainConfig(lrs=(0.5, 0.2), beta=0.5, epochs=1)
    net = Network.create((64, 32, 10), seed=0)
    drivers = {"ideal": IdealDriver(net.copy(), FastSolver(tol=1e-6))}
    for level, lrs in (("behavioural", (0.5, 0.2)), ("crossbar", (0.25, 0.1))):
        mm = Mismatch(g_dtod=args.g_dtod, gain_dtod=args.gain_dtod,
                      offset_dtod=1e-3 if level == "behavioural" else 1e-5)
        drivers[level] = CircuitDriver.from_network(net.sizes, net.params, level, mm, die=1)
        drivers[level].solver = CircuitSolver(tol=1e-6 / max(drivers[level].circuit.unit_gain))
    for name, drv in drivers.items():
        lr = (0.25, 0.1) if name == "crossbar" else (0.5, 0.2)
        tr = TwoPhaseTrainer(drv, TrainConfig(lrs=lr, beta=cfg.beta, epochs=1))
        rec = []
        tr.fit(data, on_epoch=rec.append)
        print(f"digits 64-32-10 {name} epoch seconds: {rec[0]['train_seconds']:.2f}")
        print(f"digits 64-32-10 {name} test error after 1 epoch: {rec[0]['test_error']:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batches (about 30 s)")
    ap.add_argument("--data-dir", help="MNIST directory (else random sparse inputs for 784-input circuits)")
    ap.add_argument("--g-dtod", type=float, default=0.02, help="conductance spread (default 0.02)")
    ap.add_argument("--gain-dtod", type=float, default=0.02, help="gain spread (default 0.02)")
    ap.add_argument("--tol", type=float, default=1e-6, help="tolerance on states in network units (default 1e-6)")
    ap.add_argument("--repeat", type=int, default=2, help="timing repeats, best kept (default 2)")
    ap.add_argument("--arch", action="append", help="only this architecture (repeatable; skips the training rows)")
    args = ap.parse_args()
    n = {"64-32-10": 200, "784-128-128-10": 100} if args.quick else \
        {"64-32-10": 1000, "784-128-128-10": 500, "784-512-512-10": 100}
    print(f"g_dtod: {args.g_dtod}")
    print(f"gain_dtod: {args.gain_dtod}")
    for arch in args.arch or n:
        if arch not in n:
            ap.error(f"--arch {arch!r}: choose from {', '.join(n)}")
        solver_rows(args, tuple(int(s) for s in arch.split("-")), n[arch])
    if not args.arch:
        training_rows(args)


if __name__ == "__main__":
    main()
