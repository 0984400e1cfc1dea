"""ngspice operating points: batched sweeps against the plain approach, and the fast circuit solver.

Prints ``name: value`` lines:

* ``ngspice op/s``: free and nudged operating points per second delivered by
  :class:`analogprop.spice.solver.SpiceSolver` on a 64-32-10 behavioural
  circuit, in the training flow (per minibatch: write and load the netlist,
  sweep the free phase; write and load again with the targets, sweep free
  then nudged per sample), weights reprogrammed between minibatches;
* ``ngspice op per CPU second``: the same per second of this process's CPU
  time (ngspice runs in-process), which a loaded machine does not distort;
* ``plain op/s`` and ``speedup vs plain``: the plain approach measured in the
  same run, one netlist load and one ``op`` per sample and phase through
  PySpice's shared-library interface;
* ``careful op/s`` and ``speedup vs careful``: the baseline a careful user
  writes: the netlist loaded once (all samples tabulated), then per sample
  ``alter vsel`` and ``op`` for the free phase, ``alter vnb`` and ``op`` for
  the nudged one (``destroy all`` every 50 samples keeps ``alter`` fast);
* ``alter ... seconds`` / ``reload ... seconds``: updating all weights of the
  loaded circuit with ``alter`` against rewriting and reloading the netlist;
* per circuit (64-32-10 and 784-128-128-10, both levels, with mismatch):
  largest difference between the fast circuit solver and ngspice, and the
  ratio of their times (``--quick`` skips the 784-128-128-10 crossbar, whose
  matrix ordering alone takes ngspice about two minutes).

    python benchmarks/spice.py [--quick]
"""
import argparse
import os
import time

import numpy as np

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.solver import CircuitSolver
from analogprop.model.network import Network
from analogprop.spice.engine import engine
from analogprop.spice.netlist import netlist
from analogprop.spice.solver import SpiceSolver

MISMATCH = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=0.01, leak_dtod=0.05, cap_dtod=0.1)


def data(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, sizes[0])) * (rng.uniform(0, 1, (n, sizes[0])) < 0.5)
    return x, np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


def batched(circuit, net, x, y, batch, beta=0.5):
    """Training-flow throughput: free + nudged per minibatch, weights changed between minibatches."""
    solver = SpiceSolver()
    rng = np.random.default_rng(1)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        free = solver.solve(circuit, xb)
        solver.solve(circuit, xb, yb, beta, start=free.states)
        circuit.program({k: v + 1e-3 * rng.standard_normal(v.shape) for k, v in net.params.items()})
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    return 2 * len(x) / dt, 2 * len(x) / dcpu, solver


def plain(circuit, x, y, beta=0.5):
    """One netlist load and one op per sample and phase."""
    eng = engine()
    names = [f"h{circuit.n_layers}_{i}" for i in range(circuit.sizes[-1])]
    out = []
    t = time.perf_counter()
    for i in range(len(x)):
        for b in (0.0, beta):
            text = netlist(circuit, x[i:i + 1], y[i:i + 1], analysis=False)
            text = text.replace("vnb nb 0 dc 0 ", f"vnb nb 0 dc {b!r} ")
            eng.load(text, "plain.cir")
            eng.exec_command("op")
            out.append(eng.vectors(names)[0])
            eng.release()
    return 2 * len(x) / (time.perf_counter() - t), np.array(out)


def careful(circuit, x, y, beta=0.5):
    """One netlist load, then alter + op per sample and phase."""
    eng = SpiceSolver().load(circuit, x, y)
    names = [f"h{circuit.n_layers}_{i}" for i in range(circuit.sizes[-1])]
    out = []
    t = time.perf_counter()
    for i in range(len(x)):
        eng.exec_command(f"alter vsel dc = {i}")
        for b in (0.0, beta):
            eng.exec_command(f"alter vnb dc = {b!r}")
            eng.exec_command("op")
            out.append(eng.vectors(names)[0])
        if i % 50 == 49:
            eng.release()
    eng.release()
    return 2 * len(x) / (time.perf_counter() - t), np.array(out)


def alter_vs_reload(circuit, x, y):
    """Seconds to update every behavioural weight with alter, and to rewrite and reload the netlist."""
    eng = SpiceSolver().load(circuit, x, y)
    cmds = []
    for k in range(circuit.n_layers):
        for name, pre in ((f"fwd{k}", f"f{k}"), (f"bwd{k}", f"b{k}")):
            if name in circuit.values:
                w = circuit.values[name] * circuit.g_unit * 1.001
                cmds += [f"alter @g{pre}_{i}_{j}[gain] = {w[i, j]!r}" for i, j in zip(*np.nonzero(w))]
    t = time.perf_counter()
    for c in cmds:
        eng.exec_command(c)
    t_alter = time.perf_counter() - t
    t = time.perf_counter()
    SpiceSolver().load(circuit, x, y)
    return len(cmds), t_alter, time.perf_counter() - t


def agreement(sizes, level, n, beta=0.5):
    net = Network.create(sizes, seed=0)
    for name, w in net.params.items():   # stronger weights: saturated units
        w *= 2.0 if name.startswith("fwd") else 0.5
    circuit = compile_circuit(sizes, net.params, level, MISMATCH, die=1)
    x, y = data(sizes, n)
    fast, spice = CircuitSolver(tol=1e-10), SpiceSolver()
    t = time.perf_counter()
    ff = fast.solve(circuit, x)
    fn = fast.solve(circuit, x, y, beta, start=ff.states)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    sf = spice.solve(circuit, x)
    sn = spice.solve(circuit, x, y, beta, start=sf.states)
    t_spice = time.perf_counter() - t
    diff = max(np.abs(a - b).max() for p, q in ((ff, sf), (fn, sn)) for a, b in zip(p.states, q.states))
    sat = np.mean([np.mean((r <= 0) | (r >= 1)) for r in circuit.outputs(sf.states, x)[1:]])
    unconv = sf.n_unconverged + sn.n_unconverged
    return diff, t_spice / t_fast, sat, unconv


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (within 45 s)")
    args = ap.parse_args()
    sizes = (64, 32, 10)
    n, n_plain, batch = (400, 10, 200) if args.quick else (2000, 100, 200)
    net = Network.create(sizes, seed=0)
    circuit = compile_circuit(sizes, net.params, "behavioural", MISMATCH, die=1)
    x, y = data(sizes, n)
    ops, ops_cpu, solver = batched(circuit, net, x, y, batch)
    circuit = compile_circuit(sizes, net.params, "behavioural", MISMATCH, die=1)
    plain_ops, plain_out = plain(circuit, x[:n_plain], y[:n_plain])
    free = solver.solve(circuit, x[:n_plain])
    nudged = solver.solve(circuit, x[:n_plain], y[:n_plain], 0.5, start=free.states)
    ref = np.stack([free.states[-1], nudged.states[-1]], axis=1).reshape(2 * n_plain, -1)
    print(f"network: 64-32-10 behavioural, mismatch, minibatch {batch}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(f"ngspice op/s: {ops:.0f}")
    print(f"ngspice op per CPU second: {ops_cpu:.0f}")
    print(f"ngspice sweep points per delivered point: {solver.stats['solved'] / solver.stats['points']:.2f}")
    print(f"plain op/s: {plain_ops:.1f}")
    print(f"speedup vs plain: {ops / plain_ops:.1f}")
    print(f"batched vs plain max difference: {np.abs(plain_out - ref).max():.2e}")
    careful_ops, careful_out = careful(circuit, x[:n_plain], y[:n_plain])
    print(f"careful op/s: {careful_ops:.1f}")
    print(f"speedup vs careful: {ops / careful_ops:.1f}")
    print(f"batched vs careful max difference: {np.abs(careful_out - ref).max():.2e}")
    n_alter, t_alter, t_reload = alter_vs_reload(circuit, x[:batch], y[:batch])
    print(f"alter {n_alter} weights seconds: {t_alter:.3f}")
    print(f"reload netlist seconds: {t_reload:.3f}")
    for arch, m in (((64, 32, 10), 100 if args.quick else 1000), ((784, 128, 128, 10), 2 if args.quick else 20)):
        for level in ("behavioural", "crossbar"):
            if args.quick and arch[0] == 784 and level == "crossbar":
                continue   # ~2 minutes: ngspice's Markowitz ordering of 5e5 nonzeros
            t = time.perf_counter()
            diff, ratio, sat, unconv = agreement(arch, level, m)
            print(f"{'-'.join(map(str, arch))} {level} seconds: {time.perf_counter() - t:.1f}")
            tag = f"{'-'.join(map(str, arch))} {level}"
            print(f"{tag} samples: {m}")
            print(f"{tag} saturated fraction: {sat:.2f}")
            print(f"{tag} unconverged: {unconv}")
            print(f"{tag} fast vs ngspice max difference V: {diff:.2e}")
            print(f"{tag} ngspice/fast time ratio: {ratio:.0f}")


if __name__ == "__main__":
    main()
