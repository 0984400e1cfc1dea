"""PNG figures of one or several runs side by side: error curves, alignment, its drift, angle to the gradient.

Headless (matplotlib's Agg backend).  Reads each run's ``metrics.jsonl``.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import ConfigError, OutputError
from .summary import alignment_series
from .directory import labelled_metrics, make_dir

#: Largest resolution: fine print.  An image's memory grows with its square (summary.png, four
#: 5.5 x 4 inch panels, is 26400 x 4800 pixels, 0.5 GB while drawn, at 1200 dpi).
MAX_DPI = 1200


def _series(records, key, index=None):
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, list):
            v = v[index] if index is not None and index < len(v) else None
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            xs.append(r["epoch"])
            ys.append(v)
    return xs, ys


PAIR_STYLES = ["-", "--", ":", "-."]


def _pair_key(n):
    names = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}
    return ", ".join(f"{names[PAIR_STYLES[k % 4]]}: layers {k + 1}-{k + 2}" for k in range(n))


def _errors(ax, runs):
    for i, (label, rec) in enumerate(runs):
        color = f"C{i}"
        for key, style in (("train_error", "--"), ("test_error", "-")):
            xs, ys = _series(rec, key)
            ax.plot(xs, [100 * y for y in ys], style, color=color, label=label if key == "test_error" else None)
    ax.set(xlabel="epoch", ylabel="error (%)", title="error (dashed: train, solid: test)")


def _alignment(ax, runs):
    for i, (label, rec) in enumerate(runs):
        for k in range(max(len(r.get("alignment", [])) for r in rec)):
            xs, ys = zip(*alignment_series(rec, k))  # from epoch 0, the initial weights, when recorded
            ax.plot(xs, ys, color=f"C{i}", linestyle=PAIR_STYLES[k % 4], label=label if k == 0 else None)
    n = max(len(r.get("alignment", [])) for _, rec in runs for r in rec)
    ax.set(xlabel="epoch", ylabel=r"$\cos(W_{k+1,k}, W_{k,k+1}^T)$", title="forward/feedback alignment"
           + (f"\n({_pair_key(n)})" if n > 1 else ""))


def _angle(ax, runs):
    for i, (label, rec) in enumerate(runs):
        for key, style, what in (("angle_nu_grad", "-", "nu"), ("angle_update_grad", "--", "update")):
            xs, ys = _series(rec, key)
            if xs:
                ax.plot(xs, ys, style, color=f"C{i}", label=label if what == "nu" else None)
    ax.axhline(90, color="grey", linewidth=0.8)
    ax.set(xlabel="epoch", ylabel="degrees", title=r"angle to $-\partial J/\partial W$ (solid: $\nu$, dashed: update)")


def _drift(ax, runs):
    """Cumulative ``alignment_drift`` parts from epoch 0: which weights moved each pair's alignment."""
    for i, (label, rec) in enumerate(runs):
        n = max((len(r.get("alignment_drift_forward", [])) for r in rec), default=0)
        for k in range(n):
            for part, style in (("forward", "-"), ("feedback", "--")):
                xs, ys = _series(rec, f"alignment_drift_{part}", k)
                if xs:
                    total = [0.0]
                    for y in ys:
                        total.append(total[-1] + y)
                    pair = f"layers {k + 1}-{k + 2}" if len(runs) == 1 else f"{label} layers {k + 1}-{k + 2}"
                    ax.plot([xs[0] - 1] + xs, total, style, color=f"C{i * n + k}",
                            label=pair if part == "forward" else None)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="epoch", ylabel="cumulative change of the cosine",
           title="alignment drift (solid: forward updates, dashed: feedback)")


PANELS = {"errors": _errors, "alignment": _alignment, "alignment_drift": _drift, "angle": _angle}


def plot_runs(paths, out, dpi: int = 150) -> list[Path]:
    """Write ``errors.png``, ``alignment.png``, ``alignment_drift.png`` and ``angle.png`` (these two
    when a run records them) and ``summary.png`` (all panels side by side) into ``out``; returns the
    files written."""
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 1 <= dpi <= MAX_DPI:
        raise ConfigError(f"dpi must be a whole number in 1..{MAX_DPI} (fine print), got {dpi!r}")
    runs = labelled_metrics(paths)
    has = {"angle": any("angle_nu_grad" in r for _, rec in runs for r in rec),
           "alignment_drift": any("alignment_drift_forward" in r for _, rec in runs for r in rec)}
    panels = [p for p in PANELS if has.get(p, True)]
    out = make_dir(out)
    try:
        return _draw(runs, panels, out, dpi)
    except OSError as e:
        raise OutputError.of(e.filename or out, e) from None


def _draw(runs, panels, out: Path, dpi: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []

    def finish(ax, fontsize):
        ax.legend(fontsize=fontsize)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    for name in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        PANELS[name](ax, runs)
        finish(ax, 7)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=dpi)
        plt.close(fig)
        written.append(out / f"{name}.png")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
    for ax, name in zip(axes, panels):
        PANELS[name](ax, runs)
        finish(ax, 6)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=dpi)
    plt.close(fig)
    written.append(out / "summary.png")
    return written
