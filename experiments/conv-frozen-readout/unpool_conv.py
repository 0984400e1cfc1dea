"""Remove the pooling of a conv pair (ConvNetwork.without_pooling), of a trained run or of a fresh network.

Writes a checkpoint of the widened network, which computes what the pooled
one does (on block-constant states) with p^2 times as many inputs to the
dense layer above, and prints its architecture, to train it with
``analogprop train --init``.  A trained run keeps its function; a fresh
network so widened settles as fast as the pooled one, where the widened
architecture's own Glorot init can keep a strong feedback loop unsettled:

    python experiments/conv-frozen-readout/unpool_conv.py runs/conv_mnist-outonly-decay-avg1-6 --pair 1 \\
        --out runs/conv_unpool_init.npz
    python experiments/conv-frozen-readout/unpool_conv.py --fresh 1x28x28-c32k5p2-c64k5p2-10 --dtype float32 --pair 1 \\
        --out runs/conv_unpool_scratch_init.npz
"""
import argparse
import sys

import numpy as np

from analogprop.runs.build import load_network
from analogprop.model.conv_network import ConvNetwork
from analogprop.errors import AnalogpropError
from analogprop.runs.directory import save_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("run", nargs="?", help="run directory of a convolutional network (config.json, checkpoint.npz)")
    source.add_argument("--fresh", metavar="ARCH", help="widen a freshly initialised network of this architecture")
    ap.add_argument("--seed", type=int, default=0, help="initialisation seed of --fresh")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="parameters of --fresh")
    ap.add_argument("--pair", type=int, required=True, help="the pooled conv pair k -> k+1 (0 = from the input)")
    ap.add_argument("--out", required=True, help="checkpoint (.npz) to write")
    args = ap.parse_args(argv)
    try:
        if args.fresh:
            net = ConvNetwork.create(args.fresh, seed=args.seed, dtype=np.dtype(args.dtype).type)
            origin = f"fresh {net.arch}, seed {args.seed}"
        else:
            net = load_network(args.run)
            origin = str(args.run)
        wide = net.without_pooling(args.pair)
        save_checkpoint(args.out, wide.params, {"unpooled_from": origin, "pair": args.pair})
    except AnalogpropError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"architecture: {wide.arch}")
    print(f"checkpoint: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
