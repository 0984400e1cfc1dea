"""The virtual-ground crossbar (level vground) at 784-512-512-10 (``--sizes``): the fast solver against ngspice.

Prints ``name: value`` lines:

* ``fast converged share`` and ``fast pairs/s``: the fast solver
  (:class:`analogprop.circuit.vground.VgroundSolver`) on a 784-512-512-10
  vground circuit with ``g_dtod`` 0.1 and the default non-idealities
  (op-amp gain 1e6, node clamps), free then nudged phase of each sample of a
  minibatch (sparse random inputs in [0, 1]), tolerance 1e-6 V, with the
  largest residual (V); ``--w-max`` sets the weight a device pair's full
  conductance window represents (default 2; the network's weights are below 0.11);
* ``wire resistance``: ``--wire-r`` ohm per row and column segment of each tile (``--tile``), with the
  default non-idealities (``--exact-ground``: an exact virtual ground instead), and the time the tiles'
  reduction took;
* ``ngspice size``, ``ngspice pairs/s``, ``fast/ngspice speed ratio`` and
  ``fast vs ngspice max difference V``: ngspice (:class:`analogprop.spice.solver.SpiceSolver`)
  on the same circuit family at the largest of the sizes tried that finishes
  within ``--ngspice-budget`` seconds (each size in a child process), against
  the fast solver on the same size.

* with ``--gbw 1e5,1e6,1e7`` instead: the op-amps' gain-bandwidth product in ngspice's transient mode
  (:func:`analogprop.spice.transient.simulate`) on a ``--gbw-sizes`` circuit (default 64-32-10, default
  non-idealities, no clamps), ``--gbw-samples`` samples, nudge 0.5, without the pole and at each value:
  settling times of the free and nudged phases (median and largest, to 1 % of each phase's change), the slowest
  column's closed-loop time constant and its single-pole estimate ``ln(100) tau``, and the energy until settled.

    python benchmarks/vground.py [--sizes 784-512-512-10] [--samples N] [--g-dtod G] [--w-max W] [--wire-r OHM] [--tile N] [--exact-ground]
                                 [--ngspice-budget S]
                                 [--ngspice-samples N]
                                 [--ngspice-sizes 784-128-128-10,...]   (--ngspice-sizes '': no ngspice)
    python benchmarks/vground.py --gbw 1e5,1e6,1e7 [--gbw-sizes 64-32-10] [--gbw-samples N] [--g-dtod G]
"""
import argparse
import datetime
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from analogprop.circuit import CrossbarDesign, Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities
from analogprop.circuit.vground import VgroundSolver, Layer
from analogprop.model.network import Network

SIZES = (784, 512, 512, 10)
TRIES = ((784, 512, 512, 10), (784, 256, 256, 10), (784, 128, 128, 10), (784, 96, 96, 10), (784, 64, 10))


def circuit_of(sizes, die=1, g_dtod=0.1, wire_r=0.0, tile=256, exact_ground=False, w_max=CrossbarDesign.w_max):
    """The benchmark's circuit: ``wire_r`` ohm per row and column segment, the default non-idealities or, with
    ``exact_ground``, an ideal op-amp gain; ``w_max`` the weight of a device pair's full conductance window."""
    net = Network.create(sizes, seed=0)
    nid = Nonidealities(wire_r_row=wire_r, wire_r_col=wire_r, tile=tile,
                        **({"opamp_gain": math.inf} if exact_ground else {}))
    return compile_circuit(sizes, net.params, "vground", Mismatch(g_dtod=g_dtod), die=die, clamp=True, nonideal=nid,
                           design=CrossbarDesign(w_max=w_max))


def data(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, sizes[0])) * (rng.uniform(0, 1, (n, sizes[0])) < 0.2)
    return x, np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


def fast_pairs(circuit, x, y, beta=0.5, newton_iters=VgroundSolver.newton_iters):
    """Free then nudged solves of every sample, one BLAS thread (its products are small; a threaded BLAS
    competing with another job for the 2 cores ran the wired circuit 20 times slower); pairs per second."""
    solver = VgroundSolver(tol=1e-6, newton_iters=newton_iters)
    t = time.perf_counter()
    with threadpool_limits(1):
        free = solver.solve(circuit, x)
        nudged = solver.solve(circuit, x, y, beta, start=free.states)
    dt = time.perf_counter() - t
    return free, nudged, len(x) / dt


def _spice_child(sizes, n, g_dtod, w_max, queue):
    from analogprop.spice.solver import SpiceSolver

    c = circuit_of(sizes, g_dtod=g_dtod, w_max=w_max)
    x, y = data(sizes, n)
    t = time.perf_counter()
    s = SpiceSolver(tol=1e-6, transient_fallback=False)
    free = s.solve(c, x)
    nudged = s.solve(c, x, y, 0.5)
    queue.put((time.perf_counter() - t, free.states, nudged.states,
               bool(free.converged.all() and nudged.converged.all())))


def spice_at(sizes, n, budget, g_dtod, w_max):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_spice_child, args=(sizes, n, g_dtod, w_max, queue))
    p.start()
    p.join(budget)
    if p.is_alive():
        p.kill()
        p.join()
        return None
    return queue.get() if not queue.empty() else None


def gbw_study(gbws, sizes, n, g_dtod):
    """Transient settling without the op-amps' pole and at each gain-bandwidth product (Hz)."""
    from analogprop.spice.transient import simulate, time_constant

    net = Network.create(sizes, seed=0)
    x, y = data(sizes, n)
    print(f"gbw network: {'-'.join(map(str, sizes))} vground, g_dtod {g_dtod:g}, default non-idealities, no clamps, "
          f"{n} samples, nudge 0.5, band 1 %")
    for gbw in (math.inf, *gbws):
        c = compile_circuit(sizes, net.params, "vground", Mismatch(g_dtod=g_dtod), die=1, clamp=False,
                            nonideal=Nonidealities(opamp_gbw=gbw))
        t = time.perf_counter()
        r = simulate(c, x, y, 0.5)
        tag = "none" if not math.isfinite(gbw) else f"{gbw:g} Hz"
        tau = time_constant(c)
        us = lambda a: f"{1e6 * np.median(a):.3g} / {1e6 * np.max(a):.3g}"
        print(f"gbw {tag}: free settle us (median / max): {us(r.free.settle_time)}; nudged: "
              f"{us(r.nudged.settle_time)}; slowest column tau us: {1e6 * tau:.3g}, ln(100) tau us: "
              f"{1e6 * math.log(100) * tau:.3g}; free energy nJ (median): {1e9 * np.median(r.free.energy):.3g}; "
              f"unsettled phases: {int(np.isnan(r.free.settle_time).sum() + np.isnan(r.nudged.settle_time).sum())}; "
              f"{time.perf_counter() - t:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="-".join(map(str, SIZES)), help="the fast solver's circuit (default %(default)s)")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--g-dtod", type=float, default=0.1, help="device-to-device conductance spread")
    ap.add_argument("--newton-iters", type=int, default=VgroundSolver.newton_iters,
                    help="Newton iterations per rung (plain Newton, each gmin and each source step)")
    ap.add_argument("--w-max", type=float, default=CrossbarDesign.w_max,
                    help="the weight of a device pair's full conductance window (default %(default)s)")
    ap.add_argument("--wire-r", type=float, default=0.0, help="wire resistance per row and column segment (ohm)")
    ap.add_argument("--exact-ground", action="store_true", help="an exact virtual ground (ideal op-amp gain)")
    ap.add_argument("--tile", type=int, default=256, help="crossbar tile size (crosspoints)")
    ap.add_argument("--ngspice-samples", type=int, default=4)
    ap.add_argument("--ngspice-budget", type=float, default=180.0)
    ap.add_argument("--ngspice-sizes", default=",".join("-".join(map(str, t)) for t in TRIES),
                    help="sizes to try in ngspice, largest first (comma-separated, e.g. 784-128-128-10)")
    ap.add_argument("--gbw", default="",
                    help="op-amp gain-bandwidth products to compare in transients (Hz, comma-separated; runs only that)")
    ap.add_argument("--gbw-sizes", default="64-32-10", help="circuit of the --gbw transients")
    ap.add_argument("--gbw-samples", type=int, default=4)
    args = ap.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    if args.gbw:
        gbw_study([float(v) for v in args.gbw.split(",")], tuple(int(v) for v in args.gbw_sizes.split("-")),
                  args.gbw_samples, args.g_dtod)
        return
    t = time.perf_counter()
    sizes = tuple(int(v) for v in args.sizes.split("-"))
    c = circuit_of(sizes, g_dtod=args.g_dtod, wire_r=args.wire_r, tile=args.tile, exact_ground=args.exact_ground,
                   w_max=args.w_max)
    ground = "exact virtual ground" if args.exact_ground else "default non-idealities"
    if args.wire_r:   # the tiles' reduction (once per programming)
        [Layer(c, k) for k in range(1, c.n_layers + 1)]
        print(f"wire resistance: {args.wire_r:g} ohm per segment, tile {args.tile}, {ground}; tiles "
              f"reduced in {time.perf_counter() - t:.1f} s")
    else:
        print("wire resistance: none")
    x, y = data(sizes, args.samples)
    free, nudged, pairs = fast_pairs(c, x, y, newton_iters=args.newton_iters)
    conv = np.mean(free.converged & nudged.converged)
    print(f"network: {args.sizes} vground, g_dtod {args.g_dtod:g}, w_max {args.w_max:g}, "
          f"{ground}{', wire resistance' if args.wire_r else ''}, "
          f"{args.samples} samples")
    print(f"fast converged share: {conv:.3f}")
    print(f"fast unconverged samples: {int(np.count_nonzero(~(free.converged & nudged.converged)))}")
    print(f"fast sweeps per free phase (max): {int(free.steps.max())}")
    print(f"fast max residual V: {max(free.residual.max(), nudged.residual.max()):.2e}")
    print(f"fast pairs/s: {pairs:.2f}")
    for sizes in [tuple(int(v) for v in t.split("-")) for t in args.ngspice_sizes.split(",") if t]:
        t = time.perf_counter()
        got = spice_at(sizes, args.ngspice_samples, args.ngspice_budget, args.g_dtod, args.w_max)
        tag = "-".join(map(str, sizes))
        if got is None:
            print(f"ngspice {tag}: not finished within {args.ngspice_budget:.0f} s")
            continue
        dt, sf, sn, ok = got
        cs = circuit_of(sizes, g_dtod=args.g_dtod, w_max=args.w_max)
        xs, ys = data(sizes, args.ngspice_samples)
        ff, fn, fast_rate = fast_pairs(cs, xs, ys, newton_iters=args.newton_iters)
        diff = max(np.abs(a - b).max() for p, q in ((ff.states, sf), (fn.states, sn)) for a, b in zip(p, q))
        rate = args.ngspice_samples / dt
        print(f"ngspice size: {tag} ({time.perf_counter() - t:.0f} s wall incl. netlist)")
        print(f"ngspice converged: {ok}")
        print(f"ngspice pairs/s: {rate:.3f}")
        print(f"fast pairs/s at that size: {fast_rate:.1f}")
        print(f"fast/ngspice speed ratio: {fast_rate / rate:.0f}")
        print(f"fast vs ngspice max difference V: {diff:.2e}")
        break


if __name__ == "__main__":
    main()
