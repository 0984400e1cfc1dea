"""A user's own circuit: characterization time per instance, and free+nudged pairs per second of the
tabulated solver against ngspice on the same network, with their largest node-voltage difference.

    .venv/bin/python benchmarks/own_circuit.py                       # 64-32-10, netlists/user/cmos_vg.toml
    .venv/bin/python benchmarks/own_circuit.py --spec netlists/user/cmos.toml --samples 4
    .venv/bin/python benchmarks/own_circuit.py --arch 784-128-10 --samples 1

Characterization runs in a fresh temporary cache (nothing cached).  The synapse figure uses
``--synapse-instances`` distinct devices (the specification's synapse mismatch if it has one, else a 1%
lognormal spread of its first fixed parameter, a width in the shipped examples), the neuron figure every
neuron of the network (the specification's mismatch draws).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analogprop.circuit.tabulated import TabulatedSolver, UserNetwork  # noqa: E402
from analogprop.circuit.user_spec import Mismatch, load_spec  # noqa: E402
from analogprop.spice.characterize import characterize_neurons, characterize_synapses  # noqa: E402
from analogprop.spice.user_netlist import solve_in_ngspice  # noqa: E402


def distinct_synapses(role):
    """The synapse role with a per-instance spread: its own mismatch, else 1% (lognormal) on its first fixed
    parameter."""
    if role.mismatch or not role.params:
        return role
    name, value = next(iter(role.params.items()))
    params = {k: v for k, v in role.params.items() if k != name}
    return dataclasses.replace(role, params=params, mismatch=(Mismatch(name, "lognormal", value, 0.01),))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "netlists" / "user" / "cmos_vg.toml"))
    p.add_argument("--arch", default="64-32-10")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--synapse-instances", type=int, default=20)
    p.add_argument("--beta", type=float, default=0.5)
    args = p.parse_args(argv)
    sizes = tuple(int(s) for s in args.arch.split("-"))
    spec = load_spec(args.spec)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ANALOGPROP_CACHE"] = cache
        net = UserNetwork.build(spec, sizes, die=1)
        t = time.perf_counter()
        neurons = characterize_neurons(spec, net.neuron_params)
        tn = time.perf_counter() - t
        spread = dataclasses.replace(spec, synapse=distinct_synapses(spec.synapse))
        many = spread.synapse.instance_params(1, args.synapse_instances)
        t = time.perf_counter()
        characterize_synapses(spread, many)
        ts = time.perf_counter() - t
        synapses = characterize_synapses(spec, net.synapse_params)
    prog = spec.synapse.program
    print(f"characterization: neuron {tn / len(net.neuron_params) * 1e3:.1f} ms per instance "
          f"({len(net.neuron_params)} instances, {spec.neuron.sweeps['v'][2]} points); synapse "
          f"{ts / len(many) * 1e3:.1f} ms per instance ({len(many)} instances, {prog.points} programming values "
          f"x {spec.synapse.sweeps['a'][2]} x {spec.synapse.sweeps['b'][2]} terminal voltages)")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.samples, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], args.samples)]
    solver = TabulatedSolver(net, neurons, synapses)
    t = time.perf_counter()
    free = solver.solve(x)
    nudged = solver.solve(x, y, args.beta, start=free.states)
    tt = time.perf_counter() - t
    n_syn = sum(a.program.size for a in net.arrays)
    print(f"{args.arch} ({n_syn} synapse instances), {args.samples} samples: tables {args.samples / tt:.1f} pairs/s",
          flush=True)
    t = time.perf_counter()
    ref_free = solve_in_ngspice(net, x)
    tf = time.perf_counter() - t
    print(f"ngspice free phase: {tf:.1f} s", flush=True)
    ref_nudged = solve_in_ngspice(net, x, y, args.beta)   # ngspice recomputes each free point before its nudged one
    tg = time.perf_counter() - t
    for phase, ours, ref in (("free", free.states, ref_free), ("nudged", nudged.states, ref_nudged)):
        dv = max(float(np.abs(a - b).max()) for a, b in zip(ours, ref))
        print(f"largest node difference, {phase}: {dv:.2e} V" + (f" (beta {args.beta})" if phase == "nudged" else ""))
    print(f"ngspice {args.samples / tg:.3f} pairs/s ({tg:.1f} s; tables {tg / tt:.0f}x faster)")


if __name__ == "__main__":
    main()
