"""What a run's per-epoch metrics say, in a few lines: final and best errors, and for each forward/feedback
pair how its alignment (Fig. 3 right) moved: from the initial weights to the end, its peak, and in how many
epochs it fell.  ``analogprop summary RUN_DIR ...`` prints it for one or several runs.
"""
from __future__ import annotations

from .runs import labelled_metrics


def alignment_series(records: list[dict], k: int) -> list[tuple[int, float]]:
    """(epoch, cosine) of pair ``k``, from epoch 0 (the initial weights) when the run recorded them."""
    start = records[0].get("alignment_start") if records[0]["epoch"] == 1 else None
    series = [(r["epoch"], r["alignment"][k]) for r in records if k < len(r.get("alignment", []))]
    return ([(0, start[k])] if start and k < len(start) else []) + series


def pair_history(records: list[dict], k: int) -> dict:
    """Alignment of pair ``k`` over the epochs: start (the initial weights, when the run recorded them),
    end, peak and its epoch, and the epochs in which it fell below the previous epoch's (or the start's)."""
    points = alignment_series(records, k)
    start = points[0][1] if points[0][0] == 0 else None
    falls = [(e, p - a) for (_, p), (e, a) in zip(points, points[1:]) if a < p]
    peak_epoch, peak = max((ea for ea in points if ea[0] > 0), key=lambda ea: ea[1])
    return {"start": start, "end": points[-1][1], "peak": peak, "peak_epoch": peak_epoch,
            "fall_epochs": [e for e, _ in falls], "largest_fall": max((d for _, d in falls), default=0.0)}


def summarize(records: list[dict]) -> dict:
    """Final and best errors, CPU seconds per epoch and :func:`pair_history` of every pair of one run."""
    last = records[-1]
    best = min(records, key=lambda r: r["test_error"])
    cpu = [r["cpu_seconds"] for r in records if "cpu_seconds" in r]
    return {"epochs": last["epoch"], "train_error": last.get("train_error"), "test_error": last["test_error"],
            "best_test_error": best["test_error"], "best_epoch": best["epoch"],
            "cpu_seconds": (min(cpu), max(cpu)) if cpu else None,
            "pairs": [pair_history(records, k) for k in range(len(last.get("alignment", [])))]}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def format_summary(label: str, s: dict) -> str:
    cpu = "" if s["cpu_seconds"] is None else ", {:.0f}-{:.0f} s CPU per epoch".format(*s["cpu_seconds"])
    lines = [f"{label}: {s['epochs']} epochs, train {_pct(s['train_error'])} (running), test {_pct(s['test_error'])} "
             f"(best {_pct(s['best_test_error'])}, epoch {s['best_epoch']}){cpu}"]
    for k, p in enumerate(s["pairs"]):
        start = "?" if p["start"] is None else f"{p['start']:.4f}"
        n = len(p["fall_epochs"])
        falls = (f"falls in {n} epoch{'s' * (n > 1)} (largest {p['largest_fall']:.2g}: "
                 f"{', '.join(map(str, p['fall_epochs']))})" if p["fall_epochs"] else "falls in no epoch")
        lines.append(f"  alignment layers {k + 1}-{k + 2}: {start} -> {p['end']:.4f}, "
                     f"peak {p['peak']:.4f} (epoch {p['peak_epoch']}), {falls}")
    return "\n".join(lines)


def summarize_runs(paths) -> str:
    """:func:`format_summary` of each run directory in ``paths``."""
    return "\n".join(format_summary(label, summarize(records)) for label, records in labelled_metrics(paths))
