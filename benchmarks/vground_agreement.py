"""The virtual-ground crossbar at a tiled MNIST size: the fast solver against ngspice on every node.

Compiles a ``--arch`` (default 784-128-10) vground circuit with ``--tile`` (default 256, so the 784 inputs
span four tiles per column) on a die with ``g_dtod`` 0.05 and the op-amp non-idealities ngspice's Newton
method handles together (finite gain 1e4, output resistance 100 ohm, input offsets, Pelgrom spread, spatial
gradient and field, temperature 60 C with tc1/tc2); ``--all`` adds the rest (:data:`ALL`: sinh devices,
op-amp rails, diode node clamps) and ``--wire-r`` wire segments; solves ``--samples`` samples free and nudged (beta 0.5)
with the fast solver (tolerance 1e-12 V) and with ngspice, and prints ``name: value`` lines:

* ``fast s`` and ``ngspice s``: wall time of each (ngspice: :meth:`SpiceSolver.free_and_nudged` through the
  shared library, its sweeps from 0 V: one ``dc`` run for both phases, or a gain-stepped run per phase where
  the op-amps have rails);
* ``max node difference free V`` / ``nudged V``: the largest difference on any node;
* ``plain ngspice -b s`` and ``plain ngspice -b max output difference V``: ``ngspice -b`` on the netlist that
  ``analogprop netlist`` writes (outputs printed to 12 significant digits), unless ``--no-plain``.

    nice -n 10 python benchmarks/vground_agreement.py [--arch 784-128-10] [--samples 1] [--tile 256] [--all] [--wire-r OHM]
"""
import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities
from analogprop.circuit.vground import VgroundSolver
from analogprop.model.network import Network
from analogprop.spice.netlist import netlist, printed_operating_points
from analogprop.spice.solver import SpiceSolver

NONIDEAL = dict(opamp_gain=1e4, opamp_rout=100.0, opamp_offset=1e-3, pelgrom_a=0.02, device_area=0.1,
                gradient=0.2, field_std=0.05, field_length=4.0, temp=60.0, tc1=2e-3, tc2=1e-6)
#: the non-idealities that make ngspice's Newton method work harder: sinh devices (two antiparallel junctions in
#: the netlist), op-amp output rails (B sources, gain-stepped) and the node clamps as diodes (with ``clamp=True``)
ALL = dict(device_v0=1.0, opamp_rail=3.0, clamp_model="diode")
SPREAD = Mismatch(g_dtod=0.05, gain_dtod=0.02, offset_dtod=1e-3, leak_dtod=0.02)


def plain_batch_run(circuit, x):
    """``ngspice -b`` on the written netlist: its printed outputs (12 significant digits) and the wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vground.cir"
        path.write_text(netlist(circuit, x, title="vground agreement"))
        t = time.perf_counter()
        out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True).stdout
        seconds = time.perf_counter() - t
    return printed_operating_points(out, circuit), seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="784-128-10")
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--all", action="store_true", help="every non-ideality: also sinh devices, rails, diode clamps")
    ap.add_argument("--wire-r", type=float, default=0.0, help="row and column wire segments (ohm)")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain ngspice -b run")
    args = ap.parse_args(argv)
    sizes = tuple(int(s) for s in args.arch.split("-"))
    net = Network.create(sizes, seed=0)
    nonideal = NONIDEAL | (ALL if args.all else {}) | dict(wire_r_row=args.wire_r, wire_r_col=args.wire_r)
    circuit = compile_circuit(sizes, net.params, "vground", SPREAD, die=2, clamp=args.all,
                              nonideal=Nonidealities(tile=args.tile, **nonideal))
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (args.samples, sizes[0])) * (rng.uniform(0, 1, (args.samples, sizes[0])) < 0.2)
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], args.samples)]
    print(f"command: {' '.join(sys.argv)}")
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"circuit: vground {args.arch}, tile {args.tile}, g_dtod 0.05, clamps {args.all}, {nonideal}")
    t = time.perf_counter()
    solver = VgroundSolver(tol=1e-12)
    free = solver.solve(circuit, x)
    nudged = solver.solve(circuit, x, y, 0.5, start=free.states)
    print(f"fast s: {time.perf_counter() - t:.2f}")
    print(f"fast converged: {int(free.converged.sum() + nudged.converged.sum())} of {2 * args.samples}")
    t = time.perf_counter()
    s_free, s_nudged = SpiceSolver().free_and_nudged(circuit, x, y, 0.5)
    print(f"ngspice s: {time.perf_counter() - t:.2f}")
    for name, f, s in (("free", free, s_free), ("nudged", nudged, s_nudged)):
        print(f"max node difference {name} V: {max(np.abs(p - q).max() for p, q in zip(f.states, s)):.2e}")
    if not args.no_plain:
        printed, seconds = plain_batch_run(circuit, x)
        ref = free.states[-1][:, sizes[-1]:]
        print(f"plain ngspice -b s: {seconds:.2f}")
        diff = np.abs(printed - ref).max() if printed.shape == ref.shape else float("nan")
        print(f"plain ngspice -b max output difference V: {diff:.2e} ")


if __name__ == "__main__":
    main()
