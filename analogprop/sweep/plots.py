"""Plots of a sweep: test accuracy against each swept knob, transferred versus in-circuit
(and transferred then fine-tuned in the circuit, when the sweep did it).

One PNG per knob with more than one value (``accuracy_vs_<knob>.png``):
mean over dies and seeds with error bars of one standard deviation; the
transferred weights dashed (write-verified dash-dotted), in-circuit training
solid, fine-tuned dotted; one colour per combination of the other swept
knobs (one colour per method when only one knob is swept); the ideal
reference in grey.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .store import read_results

#: (column, line style, legend) of each way of getting weights onto a die.
METHODS = (("transfer_accuracy", "--o", "transferred"), ("verified_accuracy", "-.v", "write-verified"),
           ("circuit_accuracy", "-s", "in-circuit"), ("finetune_accuracy", ":^", "fine-tuned"))


def _label(combo) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in combo) or "all"


def plot_sweep(csv_path, out_dir, knobs, dpi: int = 120) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_results(csv_path)
    swept = [k for k in knobs if len({r[k] for r in rows}) > 1]
    images = []
    for knob in swept:
        others = [k for k in swept if k != knob]
        groups = defaultdict(lambda: defaultdict(list))
        for r in rows:
            groups[tuple((k, r[k]) for k in others)][r[knob]].append(r)
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (combo, by_value) in enumerate(sorted(groups.items())):
            xs = sorted(by_value)
            c = colours[i % len(colours)]
            for j, (column, style, name) in enumerate(METHODS):
                if any(r.get(column) is None for x in xs for r in by_value[x]):
                    continue
                vals = [np.array([r[column] for r in by_value[x]]) for x in xs]
                ax.errorbar(xs, [v.mean() for v in vals], yerr=[v.std() for v in vals], fmt=style,
                            color=c if others else colours[j % len(colours)],
                            capsize=3, label=f"{name} ({_label(combo)})" if others else name)
        ax.axhline(np.mean([r["ideal_accuracy"] for r in rows]), color="0.5", lw=1, label="ideal reference")
        n = len({(r["seed"], r["die"]) for r in rows})
        over = f"{n} dies" if len({r["seed"] for r in rows}) == 1 else f"{n} (seed, die) pairs"
        ax.set_xlabel(knob)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"accuracy vs {knob} ({rows[0]['level']}, mean ± std over {over})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"accuracy_vs_{knob}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        images.append(path)
    return images
