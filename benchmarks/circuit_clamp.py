"""Fast circuit solver on clamped, mismatched crossbars: convergence and the true KCL residual.

Offsets comparable to 1 / unit_gain invert some clamp windows (clamp_hi <
clamp_lo); strong feedback makes the nets stiff.  For every configuration
the script solves the free and the nudged phase and prints how many
samples the solver left unconverged, how many it reported converged while
``Circuit.currents`` disagrees (max |I| / g above 1e-8 V; must be 0), the
worst KCL residual of a converged sample, and the wall time.

    .venv/bin/python benchmarks/circuit_clamp.py
"""
from __future__ import annotations

import time

import numpy as np

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.solver import CircuitSolver, kcl_residual
from analogprop.model.network import Network, saturate

CASES = {  # name: (sizes, gain, feedback, offset_dtod, samples, seeds)
    "moderate_20-12-5": ((20, 12, 5), 2.0, (0.5, 1.0, 2.0), 0.01, 300, range(10)),
    "stiff_30-20-12-5": ((30, 20, 12, 5), (3.0, 4.0, 3.0), (1.0, 2.0, 3.0), 0.01, 60, range(4)),
}


def saturating(sizes, seed, gain, feedback):
    """Random untied network with fixed points in both rails (as tests/conftest.py)."""
    return saturate(Network.create(sizes, seed=seed), seed, gain, feedback)


def main():
    for name, (sizes, gains, feedbacks, offset, n, seeds) in CASES.items():
        gains = gains if isinstance(gains, tuple) else (gains,) * len(feedbacks)
        mm = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=offset, leak_dtod=0.05)
        total = unconverged = wrong = inverted = 0
        worst, t0 = 0.0, time.perf_counter()
        for seed in seeds:
            for gain, fb in zip(gains, feedbacks):
                net = saturating(sizes, seed, gain, fb)
                c = compile_circuit(sizes, net.params, "crossbar", mm, die=seed, clamp=True)
                inverted += sum(int(np.sum(c.values[f"clamp_hi{k}"] < c.values[f"clamp_lo{k}"]))
                                for k in range(1, len(sizes)))
                rng = np.random.default_rng(seed)
                x, y = rng.uniform(-0.2, 1.2, (n, sizes[0])), np.eye(sizes[-1])[np.arange(n) % sizes[-1]]
                solver = CircuitSolver()
                free = solver.solve(c, x)
                nudged = solver.solve(c, x, y, 0.5, start=free.states)
                for phase, yy, beta in ((free, None, 0.0), (nudged, y, 0.5)):
                    true = kcl_residual(c, phase.states, x, yy, beta)
                    total += n
                    unconverged += int(np.sum(~phase.converged))
                    wrong += int(np.sum(phase.converged & (true > 1e-8)))
                    if phase.converged.any():
                        worst = max(worst, float(true[phase.converged].max()))
        print(f"{name}_samples: {total}")
        print(f"{name}_inverted_windows: {inverted}")
        print(f"{name}_unconverged: {unconverged}")
        print(f"{name}_converged_but_kcl_violated: {wrong}")
        print(f"{name}_worst_converged_kcl_volts: {worst:.3g}")
        print(f"{name}_seconds: {time.perf_counter() - t0:.2f}")


if __name__ == "__main__":
    main()
