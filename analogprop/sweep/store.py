"""A sweep directory: one JSON file per finished row, merged into ``results.csv``.

Each finished row is written atomically to ``rows/<key>.json`` the moment
it arrives, so an interrupted sweep loses no finished work and a rerun
skips every task whose key (a digest of everything its result depends on)
already has a row.  ``results.csv`` is rewritten atomically from the rows
of the current sweep after each one.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError
from ..runs.directory import atomic_write, make_dir
from .point import RESULT_COLUMNS


class SweepDir:
    """``sweep.json`` (the spec), ``references/``, ``rows/``, ``results.csv`` and the plots."""

    def __init__(self, path):
        self.path = Path(path)
        make_dir(self.rows_dir)
        make_dir(self.references_dir)

    rows_dir = property(lambda self: self.path / "rows")
    references_dir = property(lambda self: self.path / "references")
    csv_path = property(lambda self: self.path / "results.csv")
    spec_path = property(lambda self: self.path / "sweep.json")

    def write_spec(self, spec: dict) -> None:
        atomic_write(self.spec_path, lambda f: f.write(json.dumps(spec, indent=2).encode()))

    def finished(self) -> dict[str, dict]:
        """key -> row of every stored row (unreadable files are reported, not skipped silently)."""
        rows = {}
        for p in sorted(self.rows_dir.glob("*.json")):
            try:
                row = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise DataError(f"{p}: corrupt sweep row ({e}); delete it to recompute that point") from None
            rows[row.get("key", p.stem)] = row
        return rows

    def store(self, row: dict) -> None:
        atomic_write(self.rows_dir / f"{row['key']}.json", lambda f: f.write(json.dumps(row).encode()))

    def write_csv(self, rows: list[dict], knobs: list[str]) -> None:
        """The sweep's rows (in task order) as ``results.csv``: one row per point, seed and die."""
        columns = ["point", "seed", "die", "level", *knobs, *RESULT_COLUMNS, "key"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write(self.csv_path, lambda f: f.write(buf.getvalue().encode()))


def read_results(path) -> list[dict]:
    """Rows of a ``results.csv`` with numbers parsed."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no sweep results here")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k, v in row.items():
            if k not in ("level", "key"):
                row[k] = float(v) if v not in ("", None) else None
    return rows


#: Smallest transfer loss (accuracy) for which the recovered share is reported.
MIN_LOSS = 0.02


def summarize(rows: list[dict], knobs: list[str]) -> list[dict]:
    """Per grid point (knob values): mean and std over seeds and dies of the accuracies, and the share of the
    transfer loss that in-circuit training wins back, ``(circuit - transfer) / (ideal - transfer)`` (None when
    transfer loses less than :data:`MIN_LOSS`)."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in knobs), []).append(r)
    out = []
    for values, rs in groups.items():
        s = dict(zip(knobs, values), dies=len(rs))
        for col in ("ideal", "transfer", "verified", "circuit", "finetune"):
            if any(r.get(f"{col}_accuracy") is None for r in rs):
                continue
            a = np.array([r[f"{col}_accuracy"] for r in rs], dtype=float)
            s[col], s[f"{col}_std"] = float(a.mean()), float(a.std())
        lost = s["ideal"] - s["transfer"]
        s["recovered"] = (s["circuit"] - s["transfer"]) / lost if lost >= MIN_LOSS else None
        out.append(s)
    return out


def summary_table(rows: list[dict], knobs: list[str]) -> str:
    """The plain-text summary table of a sweep's rows, one line per point."""
    return format_summary(summarize(rows, knobs), knobs)


def format_summary(summary: list[dict], knobs: list[str]) -> str:
    """A plain-text table of :func:`summarize`'s output."""
    tuned = all("finetune" in s for s in summary)

    def spread(s, col):
        return f"{s[col]:.4f} ± {s[col + '_std']:.4f}" if col in s else "-"

    head = [*knobs, "dies", "ideal", "transferred", "write-verified", "in-circuit", "recovered"] + (
        ["fine-tuned"] if tuned else [])
    lines = [head]
    for s in summary:
        rec = "-" if s["recovered"] is None else f"{s['recovered']:.2f}"
        lines.append([*(f"{s[k]:g}" for k in knobs), str(s["dies"]), f"{s['ideal']:.4f}",
                      spread(s, "transfer"), spread(s, "verified"), spread(s, "circuit"),
                      rec] + ([spread(s, "finetune")] if tuned else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)
