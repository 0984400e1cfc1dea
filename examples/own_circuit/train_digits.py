"""Train 64-32-10 on the embedded digits with a CMOS neuron and gate-programmed NMOS synapses.

1. train on the nominal circuit (no mismatch: the "ideal" design), fast tabulated solver in the loop;
2. deploy those programming values on a die with Pelgrom threshold mismatch and measure;
3. train in-circuit on that die from the deployed values;
4. temperature drift: the die trained at 27 C is operated at 85 C, measured, and retrained there.

Every epoch a few test samples are also solved by ngspice on the full netlist (spot checks).

    .venv/bin/python examples/own_circuit/train_digits.py --epochs 3
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analogprop.circuit.user_spec import load_spec  # noqa: E402
from analogprop.data import load_dataset  # noqa: E402
from analogprop.drivers.user_circuit import UserCircuitDriver  # noqa: E402
from analogprop.model.network import Network  # noqa: E402
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer  # noqa: E402

SIZES = (64, 32, 10)


def nominal(spec):
    """The specification without mismatch: every instance the nominal device."""
    return dataclasses.replace(spec, neuron=dataclasses.replace(spec.neuron, mismatch=()),
                               synapse=dataclasses.replace(spec.synapse, mismatch=()))


def test_error(driver, data) -> float:
    return TwoPhaseTrainer(driver, TrainConfig(epochs=1)).evaluate(data.x_test, data.y_test)["error"]


def train(driver, data, epochs, lrs, beta, label):
    trainer = TwoPhaseTrainer(driver, TrainConfig(beta=beta, lrs=lrs, epochs=epochs, batch_size=20))
    start = time.perf_counter()

    def on_epoch(record):
        dv = driver.spot_check(data.x_test[:3])
        print(f"  {label} epoch {record['epoch']}: test error {100 * record['test_error']:.1f}% "
              f"(ngspice spot check: {dv:.1e} V) {time.perf_counter() - start:.0f}s", flush=True)

    trainer.fit(data, on_epoch=on_epoch)
    return test_error(driver, data)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "netlists" / "user" / "cmos.toml"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lrs", type=float, nargs=2, default=(400.0, 200.0))
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--die", type=int, default=1)
    args = p.parse_args(argv)
    spec = load_spec(args.spec)
    data = load_dataset("digits", None, False)
    init = Network.create(SIZES, seed=0).params

    ideal = UserCircuitDriver.from_spec(nominal(spec), SIZES)
    ideal.deploy_from_network(init)
    print(f"nominal design ({spec.temperature:g} C): training with the fast solver")
    e_ideal = train(ideal, data, args.epochs, args.lrs, args.beta, "nominal")
    trained = ideal.get_parameters()

    die = UserCircuitDriver.from_spec(spec, SIZES, die=args.die)
    die.set_parameters(trained)
    e_deployed = test_error(die, data)
    print(f"die {args.die} (Pelgrom mismatch): nominal-trained values deployed: test error {100 * e_deployed:.1f}%")
    e_insitu = train(die, data, args.epochs, args.lrs, args.beta, "in-circuit")

    hot = UserCircuitDriver.from_spec(spec, SIZES, die=args.die, temperature=85.0)
    hot.set_parameters(die.get_parameters())
    e_hot = test_error(hot, data)
    print(f"die {args.die} at 85 C with its 27 C training: test error {100 * e_hot:.1f}%")
    e_hot_retrained = train(hot, data, args.epochs, args.lrs, args.beta, "retrain at 85 C")

    print("\nsummary (test error, embedded digits, 64-32-10):")
    for name, e in (("nominal design, trained on it", e_ideal), (f"deployed on die {args.die}", e_deployed),
                    (f"trained in-circuit on die {args.die}", e_insitu), ("same die at 85 C", e_hot),
                    ("retrained in-circuit at 85 C", e_hot_retrained)):
        print(f"  {name:40s} {100 * e:5.1f}%")


if __name__ == "__main__":
    main()
