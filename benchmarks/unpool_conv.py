"""Remove the pooling of a trained convolutional run's last conv pair (ConvNetwork.without_pooling).

Writes a checkpoint of the widened network, which starts near the trained
function with p^2 times as many inputs to the dense layer above, and prints
its architecture, to continue training with ``benchmarks/mnist.py --init``:

    python benchmarks/unpool_conv.py benchmarks/out/conv_mnist-outonly-decay-avg1-6 --pair 1 \\
        --out benchmarks/out/conv_unpool_init.npz
"""
import argparse
import sys

from analogprop.build import build
from analogprop.errors import AnalogpropError
from analogprop.runs import RunDir, load_checkpoint, save_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run directory of a convolutional network (config.json, checkpoint.npz)")
    ap.add_argument("--pair", type=int, required=True, help="the pooled conv pair k -> k+1 (0 = from the input)")
    ap.add_argument("--out", required=True, help="checkpoint (.npz) to write")
    args = ap.parse_args(argv)
    try:
        run = RunDir(args.run)
        _, driver, _ = build(run.read_config(), load_checkpoint(run.checkpoint_path)[0])
        wide = driver.network.without_pooling(args.pair)
        save_checkpoint(args.out, wide.params, {"unpooled_from": str(args.run), "pair": args.pair})
    except AnalogpropError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"architecture: {wide.arch}")
    print(f"checkpoint: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
