"""Load a trained MNIST checkpoint (from `analogprop train`) and evaluate it.

The prediction is the free fixed point's output (Eq. 57), reached with the
run's own solver settings.  Without a run directory it evaluates the
784-512-512-10 network shipped in ``experiments/mnist-784-512-512-10/run/`` (40 epochs, the
README's 1.84% test error, 0.098% training error):

    python examples/evaluate_mnist_checkpoint.py --data-dir ../shared/datasets/mnist --train
    python examples/evaluate_mnist_checkpoint.py runs/mnist-784-512-512-10 --data-dir ../shared/datasets/mnist
"""
import argparse
import sys
from pathlib import Path

from analogprop.runs.build import load_run
from analogprop.errors import AnalogpropError
from analogprop.training.trainer import TwoPhaseTrainer


def evaluate(run_dir, data_dir=None, limit=None, train=False) -> dict:
    """Test (and optionally training) error of the checkpoint in ``run_dir``."""
    data, driver, tc, meta = load_run(run_dir, data_dir=data_dir)
    out = {"epochs_trained": meta["state"]["epoch"]}
    with driver:
        trainer = TwoPhaseTrainer(driver, tc)
        test = trainer.evaluate(data.x_test[:limit], data.y_test[:limit])
        out.update(test_error=test["error"], test_cost=test["cost"], unconverged=test["unconverged"])
        if train:
            out["train_error"] = trainer.evaluate(data.x_train[:limit], data.y_train[:limit])["error"]
    return out


SHIPPED = Path(__file__).resolve().parents[1] / "experiments" / "mnist-784-512-512-10" / "run"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default=SHIPPED,
                    help="run directory with config.json and checkpoint.npz (default: the shipped 784-512-512-10)")
    ap.add_argument("--data-dir", help="MNIST directory (default: the one the run used)")
    ap.add_argument("--limit", type=int, help="evaluate only the first N samples")
    ap.add_argument("--train", action="store_true", help="also evaluate on the training set")
    args = ap.parse_args(argv)
    try:
        res = evaluate(args.run, args.data_dir, args.limit, args.train)
    except AnalogpropError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for k, v in res.items():
        print(f"{k}: {100 * v:.2f}%" if k.endswith("error") else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
