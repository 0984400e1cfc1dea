"""``analogprop sweep``: train the references, run the missing rows, store them, plot.

Order of work: expand the spec into tasks; skip every task whose row is
stored; train (or load) the ideal reference of each seed still needed, once,
in this process; run the remaining rows serially or on Dask, storing each
as it finishes; rewrite ``results.csv``; draw the plots.
"""
from __future__ import annotations

import sys

from .execute import dask_client, run_dask, run_serial
from .grid import SweepSpec
from .point import Stopped, train_reference
from .store import SweepDir


def run_sweep(spec: SweepSpec, out, workers: int = 0, scheduler: str | None = None, dashboard: str | None = None,
              progress: bool = True, stop=None, plots: bool = True) -> dict:
    """Run the sweep into directory ``out``; ``workers=0`` and no ``scheduler``: serially in this process.

    ``stop()`` returning True ends the sweep after the rows in flight are
    stored (rows not finished are cancelled).  Returns ``{"rows", "computed",
    "skipped", "total", "complete", "csv", "plots"}``.
    """
    from tqdm import tqdm

    stop = stop or (lambda: False)
    sweep = SweepDir(out)
    sweep.write_spec(spec.to_dict())
    tasks = spec.points()
    stored = sweep.finished()
    todo = [t for t in tasks if t["key"] not in stored]
    skipped = len(tasks) - len(todo)
    references = {}
    try:
        for t in todo:
            if t["seed"] not in references:
                if progress:
                    print(f"ideal reference, seed {t['seed']}: {spec.epochs} epochs (cached in {sweep.references_dir})",
                          file=sys.stderr)
                references[t["seed"]] = train_reference(t, sweep.references_dir, stop)
            t["reference"] = t["seed"]
    except Stopped:
        todo = []
    rows = dict(stored)
    computed = []
    bar = tqdm(total=len(tasks), initial=skipped, disable=not progress, file=sys.stderr,
               desc="sweep", unit="row", dynamic_ncols=True)

    def on_row(row):
        sweep.store(row)
        rows[row["key"]] = row
        computed.append(row["key"])
        sweep.write_csv([rows[t["key"]] for t in tasks if t["key"] in rows], spec.knob_names())
        bar.set_postfix(transfer=f"{row['transfer_accuracy']:.3f}", circuit=f"{row['circuit_accuracy']:.3f}",
                        refresh=False)
        bar.update(1)

    try:
        if todo and (workers or scheduler):
            with dask_client(workers, scheduler, dashboard) as client:
                run_dask(client, todo, references, on_row, stop)
        elif todo:
            run_serial(todo, references, on_row, stop)
    finally:
        bar.close()
    ordered = [rows[t["key"]] for t in tasks if t["key"] in rows]
    sweep.write_csv(ordered, spec.knob_names())
    images = []
    if plots and ordered:
        from .plots import plot_sweep

        images = plot_sweep(sweep.csv_path, sweep.path, spec.knob_names())
    return {"rows": ordered, "computed": len(computed), "skipped": skipped, "total": len(tasks),
            "complete": len(ordered) == len(tasks), "csv": sweep.csv_path, "plots": images}


def default_workers() -> int:
    """One worker per core available to this process."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

