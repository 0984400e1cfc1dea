"""IR drop on the virtual-ground crossbar: transferred versus in-circuit-trained weights (embedded digits).

A 64-32-10 network on the virtual-ground crossbar (``--level vground``) with an exact virtual ground and
resistive wires: each row and column wire segment between adjacent crosspoints of a 64 x 64 tile has
``wire_r`` ohm (devices of 100 kohm per unit conductance).  For each wire resistance it prints the accuracy of
the ideal network, of its weights programmed onto the die (transferred), and of the die trained in the circuit
with the two-phase rule from the same initial weights (whose local updates see the IR drop), and the share of
the transfer loss that in-circuit training recovers.

    python examples/vground_ir_drop.py [--wire-r 0,100,300] [--epochs 3] [--out runs/vground-ir-drop]

A rerun skips the rows already in ``--out``.
"""
import argparse
import sys
from pathlib import Path

from analogprop.errors import AnalogpropError
from analogprop.sweep import make_spec, run_sweep
from analogprop.sweep.store import summary_table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wire-r", default="0,100,300", help="ohm per wire segment, comma-separated")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="runs/vground-ir-drop")
    args = ap.parse_args(argv)
    try:
        spec = make_spec(None, ["g_dtod=0", f"wire_r={args.wire_r}"], level="vground", opamp_gain="none", tile=64,
                         arch="64-32-10", epochs=args.epochs, dies=1)
        res = run_sweep(spec, Path(args.out), progress=False)
    except AnalogpropError as e:
        sys.exit(f"error: {e}")
    print(summary_table(res["rows"], spec.knob_names()))
    for p in res["plots"]:
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
