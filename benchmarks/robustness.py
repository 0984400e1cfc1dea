"""Robustness to device mismatch: deploying ideal-trained weights vs training in the circuit.

A 64-32-10 network is trained on the embedded digits with the ideal driver.
For each device spread ``s`` (conductance/transconductance ``g_dtod = s``,
gain ``gain_dtod = s``, buffer offsets ``offset_dtod = s / unit_gain`` V,
i.e. ``s`` in network units) and each level, on ``--dies`` dies:

* ``deployed``: the ideal-trained weights transferred with the nominal mapping;
* ``verified``: the same with write-verify programming (device spread
  compensated; buffers, inverters and leaks are not);
* ``in-circuit``: the deployed die then trained in the circuit (fast
  circuit solver, local rule) for ``--epochs`` epochs.

Prints the mean test error of each as ``name: value`` lines;
``--quick`` uses one die, two spreads and fewer epochs (about 40 s).

    python benchmarks/robustness.py [--quick]
"""
import argparse

import numpy as np

from analogprop.circuit import Mismatch
from analogprop.circuit.solver import CircuitSolver
from analogprop.data import load_digits
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ideal import IdealDriver
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def test_error(driver, data):
    return TwoPhaseTrainer(driver, TrainConfig(lrs=(0.0,), epochs=1)).evaluate(data.x_test, data.y_test)["error"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one die, two spreads, fewer epochs")
    ap.add_argument("--dies", type=int, default=3, help="dies per spread (default 3)")
    ap.add_argument("--epochs", type=int, default=15, help="ideal training epochs (default 15)")
    ap.add_argument("--circuit-epochs", type=int, default=5, help="in-circuit training epochs (default 5)")
    args = ap.parse_args(argv)
    spreads = [0.02, 0.1] if args.quick else [0.0, 0.02, 0.05, 0.1, 0.2]
    dies = 1 if args.quick else args.dies
    epochs, c_epochs = (8, 2) if args.quick else (args.epochs, args.circuit_epochs)
    data = load_digits()
    ideal = IdealDriver(Network.create((64, 32, 10), seed=0), FastSolver(tol=1e-6))
    TwoPhaseTrainer(ideal, TrainConfig(lrs=(0.5, 0.2), beta=0.5, epochs=epochs)).fit(data)
    weights = ideal.get_parameters()
    print(f"ideal test error: {test_error(ideal, data):.4f}")
    for level, lrs in (("behavioural", (0.5, 0.2)), ("crossbar", (0.25, 0.1))):
        for s in spreads:
            errs = {"deployed": [], "verified": [], "in-circuit": []}
            for die in range(dies):
                drv = CircuitDriver.from_network((64, 32, 10), weights, level, die=die)
                off = s / max(drv.circuit.unit_gain)
                drv = CircuitDriver.from_network((64, 32, 10), weights, level,
                                                 Mismatch(g_dtod=s, gain_dtod=s, offset_dtod=off), die=die)
                drv.solver = CircuitSolver(tol=1e-6 / max(drv.circuit.unit_gain))
                drv.deploy(weights, verify=True)
                errs["verified"].append(test_error(drv, data))
                drv.deploy(weights)
                errs["deployed"].append(test_error(drv, data))
                TwoPhaseTrainer(drv, TrainConfig(lrs=lrs, beta=0.5, epochs=c_epochs, seed=die)).fit(data)
                errs["in-circuit"].append(test_error(drv, data))
            for name, e in errs.items():
                print(f"{level} spread {s} {name} test error: {np.mean(e):.4f}")


if __name__ == "__main__":
    main()
