"""Train 64-32-10 on the embedded digits with a low-input-impedance CMOS neuron and transmission-gate synapses.

1. train on the nominal circuit (no mismatch: the "ideal" design), fast tabulated solver in the loop;
2. deploy those programming values on a die with Pelgrom threshold mismatch and measure;
3. train in-circuit on that die from the deployed values;
4. temperature drift: the die trained at 27 C is operated at 85 C, measured, and retrained there.

Every epoch a few test samples are also solved by ngspice on the full netlist (spot checks).  With
``--records DIR`` each training stage is written as a run record (``config.json``, ``metrics.jsonl``,
one line per epoch with its spot check) that ``analogprop summary`` and the results page read.

    .venv/bin/python examples/own_circuit/train_digits.py --epochs 3 --train-subset 300 --spot-checks 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analogprop.circuit.user_spec import load_spec  # noqa: E402
from analogprop.data import load_dataset  # noqa: E402
from analogprop.drivers.user_circuit import UserCircuitDriver  # noqa: E402
from analogprop.model.network import Network  # noqa: E402
from analogprop.runs.build import complete  # noqa: E402
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer  # noqa: E402

SIZES = (64, 32, 10)


def nominal(spec):
    """The specification without mismatch: every instance the nominal device."""
    return dataclasses.replace(spec, neuron=dataclasses.replace(spec.neuron, mismatch=()),
                               synapse=dataclasses.replace(spec.synapse, mismatch=()))


def test_error(driver, data) -> float:
    return TwoPhaseTrainer(driver, TrainConfig(epochs=1)).evaluate(data.x_test, data.y_test)["error"]


def record_config(args, name, temperature, cfg) -> dict:
    """The run configuration (config.json keys, each checked) of training stage ``name``."""
    spec_path = Path(args.spec).resolve()
    config = {"dataset": "digits", "arch": "-".join(map(str, SIZES)), "bias": False,
              "train_subset": args.train_subset, "driver": "circuit",
              "driver_circuit_spec": str(spec_path.relative_to(ROOT)) if spec_path.is_relative_to(ROOT)
              else str(spec_path),
              "driver_temperature": temperature, "driver_spot_checks": args.spot_checks, **cfg.to_dict()}
    if name != "nominal":  # the nominal design has no mismatch, hence no die
        config["driver_die"] = args.die
    complete(config)
    return config


def write_record(directory, config, records) -> None:
    """A run record: ``config.json`` and one ``metrics.jsonl`` line per epoch."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def train(driver, data, args, label, spot):
    cfg = TrainConfig(beta=args.beta, lrs=args.lrs, epochs=args.epochs, batch_size=20)
    trainer = TwoPhaseTrainer(driver, cfg)
    start, records = time.perf_counter(), []

    def on_epoch(record):
        record["spot_max_dv"] = driver.spot_check(data.x_test[:spot])
        records.append(record)
        print(f"  {label} epoch {record['epoch']}: test error {100 * record['test_error']:.1f}% "
              f"(ngspice spot check of {spot} samples: {record['spot_max_dv']:.1e} V) "
              f"{time.perf_counter() - start:.0f}s", flush=True)

    trainer.fit(data, on_epoch=on_epoch)
    return test_error(driver, data), records, cfg


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "netlists" / "user" / "cmos_vg.toml"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lrs", type=float, nargs=2, default=(3000.0, 30000.0),
                   help="learning rates (volts of gate per unit of the rule) of the two layer pairs")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--die", type=int, default=1)
    p.add_argument("--hot", type=float, default=85.0, help="deployment temperature of the drift study (C)")
    p.add_argument("--train-subset", type=int, default=None, help="first N training samples (default: all)")
    p.add_argument("--spot-checks", type=int, default=3, help="test samples solved by ngspice per epoch")
    p.add_argument("--records", default=None, help="directory to write each training stage's run record into")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    spec = load_spec(args.spec)
    data = load_dataset("digits", None, False).subset(args.train_subset, None)
    init = Network.create(SIZES, seed=0).params
    results = {}

    def stage(name, driver, label, temperature):
        error, records, cfg = train(driver, data, args, label, args.spot_checks)
        results[name] = error
        if args.records:
            write_record(Path(args.records) / name, record_config(args, name, temperature, cfg), records)

    ideal = UserCircuitDriver.from_spec(nominal(spec), SIZES)
    ideal.deploy_from_network(init)
    print(f"nominal design ({spec.temperature:g} C): training with the fast solver", flush=True)
    stage("nominal", ideal, "nominal", spec.temperature)
    trained = ideal.get_parameters()

    die = UserCircuitDriver.from_spec(spec, SIZES, die=args.die)
    die.set_parameters(trained)
    results["deployed"] = test_error(die, data)
    print(f"die {args.die} (Pelgrom mismatch): nominal-trained values deployed: test error "
          f"{100 * results['deployed']:.1f}%", flush=True)
    stage("in-circuit", die, "in-circuit", spec.temperature)

    hot = UserCircuitDriver.from_spec(spec, SIZES, die=args.die, temperature=args.hot)
    hot.set_parameters(die.get_parameters())
    results["hot"] = test_error(hot, data)
    print(f"die {args.die} at {args.hot:g} C with its {spec.temperature:g} C training: test error "
          f"{100 * results['hot']:.1f}%", flush=True)
    stage("retrained-hot", hot, f"retrain at {args.hot:g} C", args.hot)

    print(f"\nsummary (test error, embedded digits, {'-'.join(map(str, SIZES))}, "
          f"{len(data.y_train)} training samples, {args.epochs} epochs per stage):")
    for name, text in (("nominal", "nominal design, trained on it"), ("deployed", f"deployed on die {args.die}"),
                       ("in-circuit", f"trained in-circuit on die {args.die}"), ("hot", f"same die at {args.hot:g} C"),
                       ("retrained-hot", f"retrained in-circuit at {args.hot:g} C")):
        print(f"  {text:40s} {100 * results[name]:5.1f}%")
    if args.records:
        (Path(args.records) / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
