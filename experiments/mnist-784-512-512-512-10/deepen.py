"""Deepen a trained dense run by a copy of one hidden layer (Network.deepened).

Writes a checkpoint of the deeper network, which starts near the trained
function, and prints its architecture, to train it with
``analogprop train --init``.  The 784-512-512-512-10 row of the README was
grown so from the shipped 784-512-512-10 run:

    python experiments/mnist-784-512-512-512-10/deepen.py experiments/mnist-784-512-512-10/run --after 2 \\
        --out runs/mnist3-grown-init.npz
"""
from __future__ import annotations

import argparse
import sys

from analogprop.runs.build import load_network
from analogprop.errors import AnalogpropError
from analogprop.runs.directory import save_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run directory of a dense network")
    ap.add_argument("--after", type=int, required=True, help="hidden layer k (1 = next to the input) to copy")
    ap.add_argument("--out", required=True, help="checkpoint (.npz) to write")
    args = ap.parse_args(argv)
    try:
        deep = load_network(args.run).deepened(args.after)
        save_checkpoint(args.out, deep.params, {"deepened_from": str(args.run), "after": args.after})
    except AnalogpropError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"architecture: {'-'.join(map(str, deep.sizes))}")
    print(f"checkpoint: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
