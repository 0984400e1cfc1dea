"""Fast fixed-point solver against the Euler reference (Eq. 59) on 784-512-512-10.

Same network, same samples, same residual tolerance; prints ``name: value``
lines.  ``--quick`` uses fewer samples (finishes within 30 s).

    python benchmarks/solvers.py [--quick]
"""
import argparse
import time

import numpy as np

from analogprop.network import Network
from analogprop.relax import EulerSolver, FastSolver


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--euler-step", type=float, default=0.5)
    ap.add_argument("--gain", type=float, default=1.0, help="scale of the Glorot weights")
    args = ap.parse_args()
    n = args.samples or (40 if args.quick else 500)
    net = Network.create((784, 512, 512, 10), seed=0)
    rng = np.random.default_rng(0)
    for name in net.params:  # optional stronger weights: more saturation
        if not name.startswith("bias"):
            net.params[name] *= args.gain
    x = rng.uniform(0, 1, (n, 784)) * (rng.uniform(0, 1, (n, 784)) < 0.2)
    y = np.eye(10)[rng.integers(0, 10, n)]
    fast, euler = FastSolver(tol=args.tol), EulerSolver(step=args.euler_step, tol=args.tol, max_steps=100000)
    out = {}
    for label, solver in (("fast", fast), ("euler", euler)):
        t = time.perf_counter()
        free = solver.solve(net, x)
        nudged = solver.solve(net, x, y, 0.5, start=free.states)
        out[label] = (time.perf_counter() - t, free, nudged)
    tf, ff, nf = out["fast"]
    te, fe, ne = out["euler"]
    diff = max(np.max(np.abs(a - b)) for p, q in ((ff, fe), (nf, ne)) for a, b in zip(p.states, q.states))
    sat = np.mean([np.mean((h <= 0) | (h >= 1)) for h in ff.states])
    print(f"samples: {n}")
    print(f"tolerance: {args.tol:g}")
    print(f"saturated fraction: {sat:.3f}")
    print(f"fast seconds: {tf:.3f}")
    print(f"euler seconds: {te:.3f}")
    print(f"fast mean sweeps free/nudged: {ff.steps.mean():.1f}/{nf.steps.mean():.1f}")
    print(f"euler mean steps free/nudged: {fe.steps.mean():.1f}/{ne.steps.mean():.1f}")
    print(f"unconverged fast/euler: {ff.n_unconverged + nf.n_unconverged}/{fe.n_unconverged + ne.n_unconverged}")
    print(f"max state difference: {diff:.2e}")
    print(f"ratio: {te / tf:.1f}")


if __name__ == "__main__":
    main()
