"""Convolutional network of Table 2 on MNIST, trained with the two-phase rule (Eq. 56).

Two 5x5 convolutions with 32 and 64 feature maps (stride 1, each followed by
2x2 average pooling), hard-sigmoid units, untied feedback kernels, a dense
10-unit output layer: ``1x28x28-c32k5p2-c64k5p2-10``.  Trains into a run
directory (checkpointed every epoch, resumable with ``--resume``) and
prints ``name: value`` lines: time per epoch and the test error per epoch.

    python benchmarks/conv_mnist.py --data-dir ../shared/datasets/mnist [--epochs 10] [--resume]

BLAS runs single-threaded by default (``--threads``): on a shared 2-core
machine multi-threaded OpenBLAS on these small matrices is far slower.
"""
import argparse
import json
from pathlib import Path

from threadpoolctl import threadpool_limits

from analogprop.model.network import FEEDBACK_INITS
from analogprop.runs.training import train

ARCH = "1x28x28-c32k5p2-c64k5p2-10"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/datasets/mnist")
    ap.add_argument("--arch", default=ARCH)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lrs", default="0.1,0.05,0.02")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--lr-decay", type=float, help="learning-rate factor per epoch from --lr-decay-start on (default 1)")
    ap.add_argument("--lr-decay-start", type=int, help="first epoch (1-based) with a decayed learning rate")
    ap.add_argument("--weight-decay", type=float, help="lambda of lambda/2 ||W||^2 on the weights (default 0)")
    ap.add_argument("--shift", type=int, help="random translation of each training image by up to N pixels (default 0)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--out", default="benchmarks/out/conv_mnist")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--keep-every", type=int, help="keep a snapshot every N epochs (for analogprop branch)")
    ap.add_argument("--symmetric", action="store_true", default=None, help="nudge with +beta and -beta (needs beta < 1)")
    ap.add_argument("--feedback-init", choices=FEEDBACK_INITS, default="random",
                    help="initial feedback kernels: independent (default) or the forward ones (untied)")
    ap.add_argument("--probe", type=int, help="probe batch for per-epoch gradient diagnostics (angle nu / -dJ/dW)")
    args = ap.parse_args()
    cfg = {"dataset": "mnist", "data_dir": args.data_dir, "arch": args.arch, "epochs": args.epochs,
           "lrs": [float(v) for v in args.lrs.split(",")], "beta": args.beta, "batch_size": args.batch_size,
           "dtype": args.dtype, "tol": args.tol, "checkpoint_every": 500,
           "lr_decay": args.lr_decay, "lr_decay_start": args.lr_decay_start, "weight_decay": args.weight_decay,
           "shift": args.shift,
           "probe": args.probe, "keep_every": args.keep_every, "symmetric": args.symmetric,
           "feedback_init": args.feedback_init}
    with threadpool_limits(args.threads):
        train(cfg, Path(args.out), resume=args.resume, progress=False)
    records = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines() if line]
    print(f"arch: {args.arch}")
    for r in records:
        print(f"epoch {r['epoch']} train error: {r['train_error']:.4f}")
        print(f"epoch {r['epoch']} test error: {r['test_error']:.4f}")
        print(f"epoch {r['epoch']} train seconds: {r['train_seconds']:.0f}")
        print(f"epoch {r['epoch']} eval seconds: {r['eval_seconds']:.0f}")
        if "angle_nu_grad" in r:
            print(f"epoch {r['epoch']} angle nu/-dJ/dW deg: {r['angle_nu_grad']:.1f}")
    print(f"best test error: {min(r['test_error'] for r in records):.4f}")
    print(f"mean train seconds per epoch: {sum(r['train_seconds'] for r in records) / len(records):.0f}")


if __name__ == "__main__":
    main()
