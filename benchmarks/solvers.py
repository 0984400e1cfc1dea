"""Fast fixed-point solver against the Euler reference (Eq. 59) on 784-512-512-10.

Same network, same samples, same residual tolerance, side by side in one
run: a free relaxation, then a nudged one started from the free fixed point,
by each solver.  The Euler reference runs in float64 at every step size in
``--euler-step``; ``ratio`` is Euler time over fast-solver time for the first
of them, 0.1 by default: a step that follows the continuous dynamics
dh/dt = mu^beta (time constant 1) closely, i.e. the physical system; 0.5 is
the EP convention, which uses Euler as a damped Jacobi solver.  Weights are Glorot (optionally scaled by ``--gain``) or those of a
trained checkpoint (``--checkpoint``); inputs are MNIST test images when
``--data-dir`` is given, else sparse random images.  Prints ``name: value``
lines.  ``--quick`` uses 40 samples (finishes within 30 s).

    python benchmarks/solvers.py [--quick] [--checkpoint benchmarks/out/mnist2/checkpoint.npz]
"""
import argparse
import time

import numpy as np

from analogprop.model.network import Network
from analogprop.model.relax import EulerSolver, FastSolver


def inputs(args, n):
    rng = np.random.default_rng(0)
    if args.data_dir:
        from analogprop.data import load_mnist

        d = load_mnist(args.data_dir)
        return d.x_test[:n], np.eye(10)[d.y_test[:n]]
    x = rng.uniform(0, 1, (n, 784)) * (rng.uniform(0, 1, (n, 784)) < 0.2)
    return x, np.eye(10)[rng.integers(0, 10, n)]


def network(args):
    net = Network.create((784, 512, 512, 10), seed=0)
    if args.checkpoint:
        from analogprop.runs.directory import load_checkpoint

        params, _ = load_checkpoint(args.checkpoint)
        net = Network(net.sizes, {k: np.asarray(v, np.float64) for k, v in params.items()}).validate()
    for name in net.params:  # optional stronger weights: more saturation
        if not name.startswith("bias"):
            net.params[name] *= args.gain
    return net


def timed(solver, net, x, y, beta, repeat):
    """Best of `repeat` timings (the machine is shared) of a free then a nudged relaxation."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        free = solver.solve(net, x)
        nudged = solver.solve(net, x, y, beta, start=free.states)
        best = min(best, time.perf_counter() - t)
    return best, free, nudged


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None, help="timings per solver, best kept (default 1 quick, 3 full)")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--euler-step", default="0.1,0.2,0.5",
                    help="Euler step sizes, comma-separated; the first gives 'ratio' (0.1: the continuous dynamics)")
    ap.add_argument("--fast-dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--gain", type=float, default=1.0, help="scale of the weights")
    ap.add_argument("--checkpoint", help="weights from a trained checkpoint (.npz) instead of Glorot")
    ap.add_argument("--data-dir", help="MNIST directory: use test images as inputs")
    ap.add_argument("--training-tols", default="1e-3,1e-4",
                    help="looser tolerances whose weight update (Eq. 56) is compared with a 1e-9 solve")
    args = ap.parse_args()
    n = args.samples or (40 if args.quick else 500)
    repeat = args.repeat or (1 if args.quick else 3)
    net, (x, y) = network(args), inputs(args, n)
    fast = FastSolver(tol=args.tol, dtype=np.dtype(args.fast_dtype).type)
    tf, ff, nf = timed(fast, net, x, y, args.beta, repeat)
    sat = np.mean([np.mean((h <= 0) | (h >= 1)) for h in ff.states])
    print(f"samples: {n}")
    print(f"weights: {args.checkpoint or 'glorot'} (gain {args.gain:g})")
    print(f"inputs: {'mnist test' if args.data_dir else 'sparse random'}")
    print(f"tolerance: {args.tol:g}")
    print(f"saturated fraction: {sat:.3f}")
    print(f"fast solver dtype: {args.fast_dtype}")
    print(f"fast seconds: {tf:.3f}")
    print(f"fast mean sweeps free/nudged: {ff.steps.mean():.1f}/{nf.steps.mean():.1f}")
    ratios = []
    for step in (float(s) for s in args.euler_step.split(",")):
        euler = EulerSolver(step=step, tol=args.tol, max_steps=100000)
        te, fe, ne = timed(euler, net, x, y, args.beta, repeat)
        diff = max(np.max(np.abs(a - b)) for p, q in ((ff, fe), (nf, ne)) for a, b in zip(p.states, q.states))
        print(f"euler step {step:g} seconds: {te:.3f}")
        print(f"euler step {step:g} mean steps free/nudged: {fe.steps.mean():.1f}/{ne.steps.mean():.1f}")
        print(f"euler step {step:g} unconverged fast/euler: {ff.n_unconverged + nf.n_unconverged}/"
              f"{fe.n_unconverged + ne.n_unconverged}")
        print(f"euler step {step:g} max state difference: {diff:.2e}")
        iters = (fe.steps.mean() + ne.steps.mean()) / (ff.steps.mean() + nf.steps.mean())
        print(f"euler step {step:g} iterations per fast sweep: {iters:.1f}")
        print(f"ratio (euler step {step:g}): {te / tf:.1f}")
        ratios.append(te / tf)
    print(f"ratio: {ratios[0]:.1f}")
    update_error(net, x, y, args)


def update_error(net, x, y, args):
    """How much a looser tolerance changes the two-phase update (Eq. 56) of this batch."""
    def update(tol, dtype=np.dtype(args.fast_dtype).type):
        solver = FastSolver(tol=tol, dtype=dtype)
        free = solver.solve(net, x)
        nudged = solver.solve(net, x, y, args.beta, start=free.states)
        r = [np.clip(x, 0, 1)] + [np.clip(s, 0, 1) for s in free.states]
        upd = net.hebbian(r, [b - a for a, b in zip(free.states, nudged.states)])
        return np.concatenate([v.ravel() for v in upd.values()]), free.steps.mean() + nudged.steps.mean()

    ref, _ = update(1e-9, np.float64)
    for tol in (float(t) for t in args.training_tols.split(",")):
        u, sweeps = update(tol)
        rel = np.linalg.norm(u - ref) / np.linalg.norm(ref)
        print(f"update at tol {tol:g}: relative error {rel:.2e}, cosine {u @ ref / np.linalg.norm(u) / np.linalg.norm(ref):.6f}, "
              f"sweeps free+nudged {sweeps:.1f}")


if __name__ == "__main__":
    main()
