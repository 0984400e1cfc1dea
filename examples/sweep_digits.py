"""Robustness sweep on the embedded digits: the headline figure.

Accuracy of ideal-trained weights transferred onto crossbar dies vs in-circuit
training, against the conductance spread (examples/sweep_digits.toml).

    python examples/sweep_digits.py [--out runs/sweep-digits] [--workers 2]

Prints the summary table and writes results.csv and accuracy_vs_g_dtod.png into --out; a rerun
skips the rows already computed.
"""
import argparse
import sys
from pathlib import Path

from analogprop.errors import AnalogpropError
from analogprop.sweep import default_workers, make_spec, read_spec_file, run_sweep
from analogprop.sweep.store import summary_table

HERE = Path(__file__).parent


def main(grid_file=HERE / "sweep_digits.toml", out="runs/sweep-digits", description=__doc__, argv=None):
    ap = argparse.ArgumentParser(description=description.splitlines()[0])
    ap.add_argument("--out", default=out)
    ap.add_argument("--workers", type=int, default=default_workers(), help="Dask workers (0: in this process)")
    ap.add_argument("--data-dir", help="MNIST directory (MNIST example)")
    args = ap.parse_args(argv)
    try:
        spec = make_spec(read_spec_file(grid_file), data_dir=args.data_dir)
        res = run_sweep(spec, Path(args.out), workers=args.workers)
    except AnalogpropError as e:
        sys.exit(f"error: {e}")
    print(summary_table(res["rows"], spec.knob_names()))
    for p in res["plots"]:
        print(f"figure: {p}")


if __name__ == "__main__":
    main()
