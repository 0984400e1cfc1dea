"""Run directories: config, metrics (JSONL and CSV) and atomic .npz checkpoints.

Checkpoints hold parameters as plain arrays and the run state as a JSON
string, so they load with ``allow_pickle=False``.  Every file is written
atomically (a temporary ``.NAME.XXXXXXXX.tmp`` renamed over it), so a
failed write (disk full, killed process) leaves the previous file intact.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import AnalogpropError, ConfigError, DataError, OutputError

#: Names of the temporary files of :func:`atomic_write` (mkstemp's random part between the dots).
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]+\.tmp$")


def make_dir(path) -> Path:
    """Create directory ``path`` and its parents; OutputError naming it when a file is in the way
    or the operating system refuses (no permission, disk full)."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"cannot create directory {path}: {blocker} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create directory {path}: {e.strerror or e}") from None
    return path


def atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it over ``path``.

    An OSError (a file where the directory should be, no permission, disk
    full) becomes an :class:`OutputError` naming the path; ``path`` is then unchanged."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError.of(path, e) from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise OutputError.of(path, e) from None


def save_checkpoint(path, params: dict[str, np.ndarray], meta: dict, device: dict | None = None,
                    compressed: bool = False, optimizer: dict | None = None) -> None:
    """Parameters, the JSON-able ``meta``, a driver's device state (:meth:`Driver.device_state`) and
    the optimizer's state (:mod:`analogprop.training.optimizers`)."""
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"device/{k}": np.asarray(v) for k, v in (device or {}).items()})
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in (optimizer or {}).items()})
    arrays["meta"] = np.array(json.dumps(meta))
    write = np.savez_compressed if compressed else np.savez
    atomic_write(Path(path), lambda f: write(f, **arrays))


def _read(path, read):
    """``read(npz)`` of the checkpoint ``path``: the one way checkpoints are read, so that every
    unreadable, truncated or corrupt file is refused the same way, naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: checkpoint not found")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive of arrays")
        with z:
            return read(z)
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError, ValueError, TypeError) as e:
        reason = (e.args[0] if isinstance(e, KeyError) and e.args else str(e)) or type(e).__name__
        raise DataError(f"{path}: corrupt or truncated checkpoint ({reason}); use another checkpoint or "
                        "snapshot of the run") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None


def _meta(z) -> dict:
    meta = json.loads(str(z["meta"]))
    if not isinstance(meta, dict):
        raise ValueError(f"its meta is a JSON {type(meta).__name__}, not an object")
    return meta


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """(parameters, meta) of a checkpoint."""
    return _read(path, lambda z: ({k[6:]: z[k] for k in z.files if k.startswith("param/")}, _meta(z)))


def checkpoint_epoch(path, meta: dict) -> tuple[int, int]:
    """(epoch, batch) of the run state in a checkpoint's ``meta``, refused when malformed."""
    state = meta.get("state")
    try:
        epoch, batch = state["epoch"], state["batch"]
    except (KeyError, TypeError):
        epoch = batch = None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, batch)):
        raise DataError(f"{path}: corrupt checkpoint (no valid run state: {state!r:.80})")
    return epoch, batch


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
        return sorted(int(p.stem[6:]) for p in (self.path / "snapshots").glob("epoch-*.npz")
                      if p.stem[6:].isdigit())

    FILES = ("config.json", "checkpoint.npz", "metrics.jsonl", "metrics.csv")

    def holds_run(self) -> bool:
        """Whether the directory holds (part of) a run: any of its files."""
        return any((self.path / name).exists() for name in self.FILES)

    def clear(self) -> None:
        """Remove the run's files and snapshots (and nothing else), to train a new run in their place."""
        if not self.path.is_dir():
            return
        for name in self.FILES:
            (self.path / name).unlink(missing_ok=True)
        for e in self.snapshots():
            self.snapshot_path(e).unlink(missing_ok=True)
        self.clean_temporaries()

    def clean_temporaries(self) -> list[Path]:
        """Remove the temporary files a killed process left behind (only :data:`TEMP_NAME`
        files of the run's own files); returns them."""
        stale = [p for d in (self.path, self.path / "snapshots") if d.is_dir() for p in d.iterdir()
                 if (m := TEMP_NAME.match(p.name)) and p.is_file()
                 and (m["name"] in self.FILES or re.fullmatch(r"epoch-\d+\.npz", m["name"]))]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

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
        """The saved configuration, refused (naming the file and the key) unless it is a JSON object
        of valid settings (:func:`analogprop.runs.build.complete`)."""
        from .build import complete

        path = self.config_path
        if not path.exists():
            raise DataError(f"{self.path}: not a run directory (no config.json), so there is no run to resume or read")
        cfg = _read_json(path, "run configuration")
        if not isinstance(cfg, dict):
            raise DataError(f"{path}: holds a JSON {type(cfg).__name__}, not an object of settings")
        try:
            complete(cfg)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        return cfg

    def metrics(self) -> list[dict]:
        """The per-epoch records of ``metrics.jsonl`` (refused, naming the line, when malformed)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for i, line in enumerate(_read_text(self.metrics_path, "metrics").splitlines(), start=1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise DataError(f"{self.metrics_path}: line {i} is malformed ({e})") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{self.metrics_path}: line {i} is not an epoch record (a JSON object)")
                records.append(rec)
        return records

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


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: corrupt {what} (not UTF-8 text: {e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror or e})") from None


def _read_json(path: Path, what: str):
    try:
        return json.loads(_read_text(path, what))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e})") from None


def labelled_metrics(paths) -> list[tuple[str, list[dict]]]:
    """(label, per-epoch records) of each run directory in ``paths``; the label is the directory's name
    (the experiment's name for an experiment's shipped ``run``), with the training rule when the name does
    not say it.  DataError names a path that holds no epoch."""
    runs = []
    for p in map(Path, paths):
        run = RunDir(p)
        if not run.metrics_path.exists():
            raise DataError(f"{p}: no metrics.jsonl (not a run directory, or no epoch finished yet)")
        records = run.metrics()
        if not records:
            raise DataError(f"{p}: metrics.jsonl holds no epoch")
        try:  # the label only: metrics of a run whose configuration is lost still plot
            rule = run.read_config().get("rule")
        except AnalogpropError:
            rule = None
        name = p.resolve().parent.name if p.name == "run" else p.name
        runs.append((f"{name} ({rule})" if rule and rule not in name else name, records))
    return runs


def _kept(run: RunDir) -> str:
    return f"kept: {run.snapshots() or 'none; train with --keep-every N'}"


def output_run(out, overwrite: bool | None = None, verb: str = "write") -> RunDir:
    """The run directory ``out`` to ``verb`` a new run into: refused when ``out`` is empty or a
    file, or when it already holds a run, unless ``overwrite`` (the caller then removes the old
    run's files with :meth:`RunDir.clear` when the new run starts; None: the caller has no
    such option)."""
    if not str(out).strip():
        raise ConfigError(f"the output run directory is empty ({str(out)!r}); name a directory")
    dst = RunDir(out)
    if dst.path.exists() and not dst.path.is_dir():
        raise OutputError(f"cannot write a run into {dst.path}: it is a file, not a directory")
    if dst.holds_run() and not overwrite:
        raise DataError(f"{dst.path} already holds a run; {verb} into a new directory"
                        + (" or give --overwrite to replace it" if overwrite is False else ""))
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
    if epoch not in src.snapshots():
        raise DataError(f"{src.path}: no snapshot after epoch {epoch} ({_kept(src)})")
    dst = output_run(out, verb="branch")
    _, meta = load_checkpoint(path)
    records = src.metrics()[:epoch]
    if checkpoint_epoch(path, meta) != (epoch, 0) or len(records) != epoch:
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
    kept = src.snapshots()
    wanted = epochs if isinstance(epochs, range) else set(epochs)
    if len(wanted) > len(kept):  # before anything is allocated: epochs may be a huge range
        raise DataError(f"{src.path}: {len(wanted)} epochs asked for, but only {len(kept)} snapshots are kept "
                        f"({_kept(src)})")
    epochs = sorted({int(e) for e in epochs})
    if not epochs:
        raise DataError("give at least one epoch to average")
    missing = [e for e in epochs if e not in kept]
    if missing:
        raise DataError(f"{src.path}: no snapshot after epoch(s) {missing} ({_kept(src)})")
    dst = output_run(out, verb="average")
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
    dtype = dtype or config.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise DataError(f"cannot store parameters as {dtype}: choose float32 or float64")
    dst = output_run(out, verb="export")
    params, meta = load_checkpoint(src.checkpoint_path)
    device = load_device_state(src.checkpoint_path)
    optimizer = load_optimizer_state(src.checkpoint_path)
    save_checkpoint(dst.checkpoint_path, {k: v.astype(dtype) for k, v in params.items()},
                    {**meta, "exported_from": str(src.path)}, device, compressed=True, optimizer=optimizer)
    dst.write_metrics(src.metrics())
    dst.write_config(config)
    return dst
