"""Robustness sweep on MNIST (examples/sweep_mnist.toml).

Transferred vs in-circuit accuracy of a 784-128-10 crossbar against the
conductance spread.

    python examples/sweep_mnist.py --data-dir ../shared/datasets/mnist [--out runs/sweep-mnist]
"""
from pathlib import Path

from sweep_digits import main

if __name__ == "__main__":
    main(Path(__file__).parent / "sweep_mnist.toml", out="runs/sweep-mnist", description=__doc__)
