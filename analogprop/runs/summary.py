"""What a run's per-epoch metrics say, in a few lines: final and best errors, and for each forward/feedback
pair how its alignment (Fig. 3 right) moved: from the initial weights to the end, its peak, and in how many
epochs it fell.  ``analogprop summary RUN_DIR ...`` prints it for one or several runs, ``--markdown`` as
the tables of the documentation's results page.
"""
from __future__ import annotations

from ..errors import DataError
from .directory import RunDir, labelled_metrics

#: configuration keys that shape what a run learns, each with the value at which it changes nothing
#: (None: always shown); ``driver_*`` keys (circuit and bench settings) are shown too
_SETTINGS = {"driver": "ideal", "seed": None, "dtype": None, "tol": None, "lrs": None, "beta": None,
             "symmetric": False, "random_sign": False, "lr_decay": 1, "lr_decay_start": None, "weight_decay": 0,
             "nudge_steps": 0, "shift": 0, "feedback_lr_factor": 1, "centered": False, "optimizer": "sgd",
             "feedback_init": "random", "tied": False, "linear_output": False}


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


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return ",".join(map(_value, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def settings(config: dict) -> str:
    """The settings of a run's configuration that shape what it learns, as ``key value`` (each key is the
    ``analogprop train`` option of that name, ``_`` written ``-``); one at the value where it changes nothing
    (no shift, no weight decay, ...) is left out."""
    shown = {k: config[k] for k, inert in _SETTINGS.items() if k in config and config[k] != inert}
    if "lr_decay" not in shown:
        shown.pop("lr_decay_start", None)
    shown.update((k, v) for k, v in config.items() if k.startswith("driver_"))
    return ", ".join(f"{k} {_value(v)}" for k, v in shown.items())


def _config(path) -> dict:
    try:
        return RunDir(path).read_config()
    except DataError:
        return {}


def markdown_summary(paths) -> str:
    """Two Markdown tables of the runs in ``paths``: errors and settings of each, then every
    forward/feedback pair's alignment (start, end, peak, falls).  The documentation's results page is
    this text, rendered at build time from the records themselves."""
    runs = [(str(p), label, _config(p), summarize(records))
            for p, (label, records) in zip(paths, labelled_metrics(paths))]
    lines = ["| run | data, architecture | epochs | test error | best test error (epoch) "
             "| training error (running, last epoch) | settings |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for path, label, cfg, s in runs:
        data = f"{cfg.get('dataset', '?')}, `{cfg.get('arch', '?')}`"
        lines.append(f"| {label}<br>`{path}` | {data} | {s['epochs']} | **{_pct(s['test_error'])}** "
                     f"| {_pct(s['best_test_error'])} ({s['best_epoch']}) | {_pct(s['train_error'])} "
                     f"| {settings(cfg) or '-'} |")
    lines += ["", "| run | layers | alignment at start | at end | peak (epoch) | epochs it fell (largest fall) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for _, label, _, s in runs:
        for k, p in enumerate(s["pairs"]):
            start = "-" if p["start"] is None else f"{p['start']:.4f}"
            falls = (f"{len(p['fall_epochs'])} ({p['largest_fall']:.2g})" if p["fall_epochs"] else "none")
            lines.append(f"| {label} | {k + 1}-{k + 2} | {start} | {p['end']:.4f} "
                         f"| {p['peak']:.4f} ({p['peak_epoch']}) | {falls} |")
    return "\n".join(lines)
