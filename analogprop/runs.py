"""Run directories: config, metrics (JSONL and CSV) and atomic .npz checkpoints.

Checkpoints hold parameters as plain arrays and the run state as a JSON
string, so they load with ``allow_pickle=False``.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import DataError


def atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path, params: dict[str, np.ndarray], meta: dict, device: dict | None = None,
                    compressed: bool = False, optimizer: dict | None = None) -> None:
    """Parameters, the JSON-able ``meta``, a driver's device state (:meth:`Driver.device_state`) and
    the optimizer's state (:mod:`analogprop.optimizers`)."""
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"device/{k}": np.asarray(v) for k, v in (device or {}).items()})
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in (optimizer or {}).items()})
    arrays["meta"] = np.array(json.dumps(meta))
    write = np.savez_compressed if compressed else np.savez
    atomic_write(Path(path), lambda f: write(f, **arrays))


def _read(path, read):
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return read(z)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a readable analogprop checkpoint ({e})") from None


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """(parameters, meta) of a checkpoint."""
    return _read(path, lambda z: ({k[6:]: z[k] for k in z.files if k.startswith("param/")},
                                  json.loads(str(z["meta"]))))


def transplant(fresh: dict[str, np.ndarray], donor: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """``fresh`` with every parameter that ``donor`` has under the same name and shape
    replaced by the donor's, e.g. trained layers moved into a larger network; and the names taken."""
    taken = sorted(k for k, v in fresh.items() if k in donor and np.shape(donor[k]) == np.shape(v))
    return {**fresh, **{k: np.array(donor[k]) for k in taken}}, taken


def load_device_state(path) -> dict[str, np.ndarray]:
    """The driver device state saved with a checkpoint (empty if none was)."""
    return _read(path, lambda z: {k[7:]: z[k] for k in z.files if k.startswith("device/")})


def load_optimizer_state(path) -> dict[str, np.ndarray]:
    """The optimizer state saved with a checkpoint (empty if none was, as for plain SGD)."""
    return _read(path, lambda z: {k[6:]: z[k] for k in z.files if k.startswith("optim/")})


def _flatten(record: dict) -> dict:
    out = {}
    for k, v in record.items():
        if isinstance(v, (list, tuple)):
            out.update({f"{k}_{i + 1}": x for i, x in enumerate(v)})
        else:
            out[k] = v
    return out


class RunDir:
    """One training run on disk: ``config.json``, ``metrics.jsonl``, ``metrics.csv``, ``checkpoint.npz``."""

    def __init__(self, path):
        self.path = Path(path)  # created by the first write, so reading a missing run leaves nothing behind

    config_path = property(lambda self: self.path / "config.json")
    checkpoint_path = property(lambda self: self.path / "checkpoint.npz")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    csv_path = property(lambda self: self.path / "metrics.csv")

    def snapshot_path(self, epoch: int) -> Path:
        return self.path / "snapshots" / f"epoch-{int(epoch):03d}.npz"

    def snapshots(self) -> list[int]:
        """Epochs after which a snapshot was kept."""
        return sorted(int(p.stem[6:]) for p in (self.path / "snapshots").glob("epoch-*.npz"))

    def save(self, driver, state, meta: dict, keep_every: int = 0, optimizer: dict | None = None) -> None:
        """Checkpoint the driver's parameters and device state with the run ``state``, ``meta`` and the
        ``optimizer`` state; at the end of every ``keep_every``-th epoch also keep a copy as a snapshot."""
        save_checkpoint(self.checkpoint_path, driver.get_parameters(), {"state": state.to_dict(), **meta},
                        driver.device_state(), optimizer=optimizer)
        if keep_every and state.batch == 0 and state.epoch % keep_every == 0:
            data = self.checkpoint_path.read_bytes()
            atomic_write(self.snapshot_path(state.epoch), lambda f: f.write(data))

    def write_config(self, config: dict) -> None:
        atomic_write(self.config_path, lambda f: f.write(json.dumps(config, indent=2).encode()))

    def read_config(self) -> dict:
        if not self.config_path.exists():
            raise DataError(f"{self.path}: not a run directory (no config.json), so there is no run to resume or read")
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{self.config_path}: malformed JSON ({e})") from None

    def metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite both metric files atomically from the full list of epoch records."""
        text = "".join(json.dumps(r) + "\n" for r in records)
        atomic_write(self.metrics_path, lambda f: f.write(text.encode()))
        flat = [_flatten(r) for r in records]
        fields = list(dict.fromkeys(k for r in flat for k in r))

        def write_csv(f):
            import io

            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=fields)
            w.writeheader()
            w.writerows(flat)
            f.write(buf.getvalue().encode())

        atomic_write(self.csv_path, write_csv)


def labelled_metrics(paths) -> list[tuple[str, list[dict]]]:
    """(label, per-epoch records) of each run directory in ``paths``; the label is the directory's name,
    with the training rule when the name does not say it.  DataError names a path that holds no epoch."""
    runs = []
    for p in map(Path, paths):
        run = RunDir(p)
        if not run.metrics_path.exists():
            raise DataError(f"{p}: no metrics.jsonl (not a run directory, or no epoch finished yet)")
        try:
            records = run.metrics()
        except ValueError as e:
            raise DataError(f"{run.metrics_path}: malformed ({e})") from None
        if not records:
            raise DataError(f"{p}: metrics.jsonl holds no epoch")
        try:
            rule = run.read_config().get("rule")
        except DataError:
            rule = None
        runs.append((f"{p.name} ({rule})" if rule and rule not in p.name else p.name, records))
    return runs


def _kept(run: RunDir) -> str:
    return f"kept: {run.snapshots() or 'none; train with --keep-every N'}"


def _new_run(out, verb: str) -> RunDir:
    """The run directory ``out``, refused if it already holds a run."""
    dst = RunDir(out)
    if dst.config_path.exists() or dst.checkpoint_path.exists():
        raise DataError(f"{dst.path} already holds a run; {verb} into a new directory")
    return dst


def branch(source, epoch: int, out) -> RunDir:
    """A new run in ``out`` that is ``source`` as it stood after ``epoch``: its configuration,
    the metrics of epochs 1..epoch and that epoch's snapshot as checkpoint.

    Resume it (``--resume``) with, e.g., another learning-rate schedule for
    the epochs after ``epoch``, to compare variants without retraining
    their common start.
    """
    src = RunDir(source)
    config = src.read_config()
    path = src.snapshot_path(epoch)
    if not path.exists():
        raise DataError(f"{path}: no snapshot after epoch {epoch} in {src.path} ({_kept(src)})")
    _, meta = load_checkpoint(path)
    dst = _new_run(out, "branch")
    records = src.metrics()[:epoch]
    if meta["state"]["epoch"] != epoch or len(records) != epoch:
        raise DataError(f"{path}: snapshot or metrics of {src.path} do not match epoch {epoch}")
    data = path.read_bytes()
    atomic_write(dst.checkpoint_path, lambda f: f.write(data))
    dst.write_metrics(records)
    dst.write_config(config)
    return dst


def average(source, epochs, out) -> RunDir:
    """A new run in ``out`` whose checkpoint holds the mean of ``source``'s parameters
    over the snapshots after ``epochs`` (Polyak / stochastic weight averaging).

    The averaged weights are a new programming target: the checkpoint carries
    no device state, so a circuit driver programs them onto its devices as
    when a run starts.  Its run state and metrics are those of the last epoch
    averaged; the epochs are recorded in its ``meta`` as ``averaged_epochs``.
    """
    src = RunDir(source)
    config = src.read_config()
    epochs = sorted({int(e) for e in epochs})
    if not epochs:
        raise DataError("give at least one epoch to average")
    missing = [e for e in epochs if not src.snapshot_path(e).exists()]
    if missing:
        raise DataError(f"{src.path}: no snapshot after epoch(s) {missing} ({_kept(src)})")
    dst = _new_run(out, "average")
    total, meta = None, None
    for e in epochs:
        params, meta = load_checkpoint(src.snapshot_path(e))
        if total is not None and set(params) != set(total):
            raise DataError(f"{src.snapshot_path(e)}: its parameters differ from those of epoch {epochs[0]}")
        total = {k: v.astype(np.float64) + (0 if total is None else total[k]) for k, v in params.items()}
    mean = {k: v / len(epochs) for k, v in total.items()}
    save_checkpoint(dst.checkpoint_path, mean, {**meta, "averaged_epochs": epochs})
    dst.write_metrics(src.metrics()[:epochs[-1]])
    dst.write_config(config)
    return dst


def export(source, out, dtype=None) -> RunDir:
    """A compact copy of run ``source`` in ``out`` to ship or archive: its configuration,
    metrics and a compressed checkpoint whose parameters are stored in ``dtype``
    (default: the run's solver dtype, so that evaluation is unchanged).

    Snapshots are left out; the run and optimizer state are kept, so the copy resumes.
    """
    src = RunDir(source)
    config = src.read_config()
    dtype = np.dtype(dtype or config.get("dtype", "float64"))
    if dtype.kind != "f":
        raise DataError(f"cannot store parameters as {dtype}: choose float32 or float64")
    params, meta = load_checkpoint(src.checkpoint_path)
    device = load_device_state(src.checkpoint_path)
    optimizer = load_optimizer_state(src.checkpoint_path)
    dst = _new_run(out, "export")
    save_checkpoint(dst.checkpoint_path, {k: v.astype(dtype) for k, v in params.items()},
                    {**meta, "exported_from": str(src.path)}, device, compressed=True, optimizer=optimizer)
    dst.write_metrics(src.metrics())
    dst.write_config(config)
    return dst
