"""The work of a sweep: the ideal reference of a seed, and one (knobs, seed, die) row.

A row compares two ways of getting weights onto a die, with the same epoch
budget and sample order (the seed's):

* transferred: train the ideal network (Eq. 59 dynamics, two-phase rule
  Eq. 56), then program its weights onto the die through the nominal
  mapping (:meth:`CircuitDriver.deploy`) and measure test accuracy there;
  ``verified``: the same with write-verify programming, which compensates
  each programmable device's own spread (not buffers, inverters, leaks);
* in-circuit: start the die from the same initial weights and train it with
  the two-phase rule through the circuit driver, whose local updates come
  from voltages measured on the die (mismatch, offsets and noise included);
* optionally (``finetune_epochs`` > 0) fine-tuned: the transferred die
  trained further in the circuit for that many epochs.

On a user's own circuit (``circuit_spec``) :func:`.own.run_own_point` does
the row (no write-verify).

Functions here run on Dask workers: they take and return plain data and
keep one dataset per process.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

from ..runs.build import check_fit, complete, make_driver, train_config
from ..model.conv_network import arch_sizes, create_network
from ..data import load_dataset
from ..runs.directory import checkpoint_epoch, load_checkpoint, save_checkpoint
from ..training.trainer import TrainState, TwoPhaseTrainer
from .grid import PAIR_LEVELS, VGROUND_KNOBS, digest, nonideal_settings
from .own import run_own_point
from .row import result_row

#: Row columns after the knobs, in CSV order.
RESULT_COLUMNS = ("ideal_accuracy", "transfer_accuracy", "verified_accuracy", "circuit_accuracy", "finetune_accuracy",
                  "circuit_train_accuracy",
                  "transfer_unconverged", "circuit_unconverged", "seconds")


@functools.lru_cache(maxsize=4)
def dataset(name, data_dir, train_samples, test_samples):
    """The (sub)dataset of a sweep, loaded once per process."""
    return load_dataset(name, data_dir, False).subset(train_samples, test_samples)


def _data(task):
    data = dataset(task["dataset"], task["data_dir"], task["train_samples"], task["test_samples"])
    check_fit(arch_sizes(task["arch"]), data)
    return data


def reference_config(task: dict) -> dict:
    """What the ideal reference of a task depends on (its cache key is the digest of this)."""
    return {k: task[k] for k in ("dataset", "data_dir", "train_samples", "test_samples", "arch", "seed", "epochs",
                                 "beta", "lrs", "batch_size", "tol", "max_steps")}


def _run_config(task: dict, **extra) -> dict:
    keys = ("dataset", "data_dir", "arch", "seed", "epochs", "beta", "lrs", "batch_size", "tol", "max_steps")
    return complete({**{k: task[k] for k in keys}, **extra})


class Stopped(Exception):
    """Training of a reference was stopped on request (its checkpoint is written)."""


def train_reference(task: dict, directory: Path, stop=None) -> dict:
    """Train (or load) the ideal reference of ``task``'s (architecture, seed, budget) in ``directory``.

    The checkpoint ``<digest>.npz`` is written every epoch and when
    ``stop()`` turns True (then :class:`Stopped` is raised), so an
    interrupted reference resumes; a finished one is reused.  Returns
    ``{"params", "test_accuracy", "key"}``.
    """
    ref = reference_config(task)
    key = digest(ref)
    path = Path(directory) / f"{key}.npz"
    cfg = _run_config(task)
    state, params = TrainState(), None
    if path.exists():
        params, meta = load_checkpoint(path)
        checkpoint_epoch(path, meta)
        state = TrainState.from_dict(meta["state"])
    net = create_network(cfg["arch"], seed=cfg["seed"])
    driver = make_driver(cfg, net)
    if params is not None:
        driver.set_parameters(params)
    trainer = TwoPhaseTrainer(driver, train_config(cfg))
    data = _data(task)
    if state.epoch < trainer.config.epochs:
        def checkpoint(st):
            save_checkpoint(path, driver.get_parameters(), {"state": st.to_dict(), "config": ref})

        def on_batch(st, stats):
            if stop is not None and stop():
                checkpoint(st)
                raise Stopped

        trainer.fit(data, state, on_batch=on_batch, on_checkpoint=checkpoint)
    test = trainer.evaluate(data.x_test, data.y_test)
    return {"params": driver.get_parameters(), "test_accuracy": round(1.0 - test["error"], 9), "key": key}


def circuit_lrs(task: dict) -> list[float]:
    """Learning rates of in-circuit training: ``circuit_lrs``, else the ideal ones (halved on the
    crossbar and vground levels, where both devices of a pair move and the weight steps twice as far)."""
    if task["circuit_lrs"] is not None:
        return list(task["circuit_lrs"])
    return [lr / 2 if task["level"] in PAIR_LEVELS else lr for lr in task["lrs"]]


def circuit_settings(task: dict) -> dict:
    """The circuit section (``driver_*`` keys) of a task: level, die, its knobs and the vground settings."""
    out = {"driver": "circuit", "driver_level": task["level"], "driver_die": task["die"]}
    out.update({f"driver_{k}": v for k, v in task["knobs"].items() if k not in VGROUND_KNOBS})
    if task["level"] == "vground":
        out.update(nonideal_settings(task["knobs"], task))
    return out


def _circuit(cfg):
    return make_driver(cfg, create_network(cfg["arch"], seed=cfg["seed"]))


def run_point(task: dict, reference: dict) -> dict:
    """One row: accuracy of the reference transferred onto die ``task['die']`` and after in-circuit training."""
    if task.get("circuit_spec") is not None:
        return run_own_point(task, reference, _data(task), _run_config(task))
    t0 = time.perf_counter()
    data = _data(task)
    cfg = _run_config(task, **circuit_settings(task))
    with _circuit(cfg) as driver:
        driver.deploy(reference["params"], verify=True)
        verified = TwoPhaseTrainer(driver, train_config(cfg)).evaluate(data.x_test, data.y_test)
    with _circuit(cfg) as driver:
        driver.deploy(reference["params"])
        transfer = TwoPhaseTrainer(driver, train_config(cfg)).evaluate(data.x_test, data.y_test)
        finetune = None
        if task["finetune_epochs"]:
            tuned = []
            TwoPhaseTrainer(driver, train_config({**cfg, "lrs": circuit_lrs(task), "epochs": task["finetune_epochs"]})
                            ).fit(data, on_epoch=tuned.append)
            finetune = round(1.0 - tuned[-1]["test_error"], 9)
    cfg = {**cfg, "lrs": circuit_lrs(task)}
    records = []
    with _circuit(cfg) as driver:
        trainer = TwoPhaseTrainer(driver, train_config(cfg))
        trainer.fit(data, on_epoch=records.append)
    return result_row(task, reference, transfer, verified, records[-1], finetune, t0)
