"""A training run on disk: build from config, train with checkpoints, resume, evaluate."""
from __future__ import annotations

import sys
from pathlib import Path

from .build import build, complete, load_run, train_config
from ..model.conv_network import arch_sizes
from ..errors import ConfigError, DataError
from ..training.rules import make_trainer
from .directory import (RunDir, checkpoint_epoch, load_checkpoint, load_device_state, load_optimizer_state, output_run,
                        transplant)
from ..training.trainer import TrainState, TwoPhaseTrainer


def _progress(total, enabled):
    """A progress bar on stderr when it is a terminal (``disable=None``) and ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, disable=None if enabled else True, leave=False, file=sys.stderr, dynamic_ncols=True)


def _angle(rec) -> str:
    return f" angle(nu, -dJ/dW) {rec['angle_nu_grad']:.1f} deg" if "angle_nu_grad" in rec else ""


SCHEDULE_KEYS = ("lr_decay", "lr_decay_start")
BOOKKEEPING_KEYS = ("epochs", "checkpoint_every", "keep_every")  # change no trained parameter
#: where the run finds its inputs and puts its files: they change no result either
LOCATION_KEYS = ("data_dir", "download", "driver_netlist_dir", "driver_visa_backend")


def _canonical(cfg: dict) -> dict:
    """A configuration with defaults filled and one learning rate per layer pair, so that equal
    settings compare equal."""
    out = complete(cfg)
    lrs = [float(v) for v in out["lrs"]]
    return {**out, "lrs": lrs * (len(arch_sizes(out["arch"])) - 1) if len(lrs) == 1 else lrs}


def check_unchanged(saved: dict, cfg: dict) -> None:
    """Refuse a setting of ``cfg`` that a resumed run cannot take (see :func:`resumed_config`) and that
    differs from the ``saved`` one: a resumed run continues the same training.  ConfigError names the
    key and both values."""
    given = {k: v for k, v in cfg.items() if v is not None}
    fixed = sorted(set(given) - set(BOOKKEEPING_KEYS) - set(SCHEDULE_KEYS) - set(LOCATION_KEYS))
    if not fixed:
        return
    old, new = _canonical(saved), _canonical({**saved, **{k: given[k] for k in fixed}})

    def shown(v):
        return "unset (the driver's default)" if v is None else repr(v)

    for k in fixed:
        if old.get(k) != new.get(k):
            raise ConfigError(f"--resume continues the saved run, whose {k} is {shown(old.get(k))}; got "
                              f"{shown(new.get(k))} (only epochs, checkpoint_every, keep_every, the learning-rate "
                              f"schedule of epochs to come and data/file locations may change; train a new run, "
                              f"or branch one, to change {k})")


def resumed_config(saved: dict, cfg: dict, state: TrainState) -> dict:
    """The configuration a resumed run continues with: ``saved``, with ``epochs``, the
    checkpoint and snapshot intervals, the learning-rate schedule and the data and file
    locations taken from ``cfg`` when given (its other settings are the saved run's:
    :func:`train` refuses different ones with :func:`check_unchanged`).

    A new schedule must give the same learning rates as the saved one in every
    epoch already (partly) trained, so the resumed run is the run that would
    have used it from the start.
    """
    given = {k: v for k, v in cfg.items() if v is not None}
    out = dict(saved)
    out.update({k: given[k] for k in BOOKKEEPING_KEYS + LOCATION_KEYS if k in given})
    new = {k: cfg[k] for k in SCHEDULE_KEYS if cfg.get(k) is not None}
    if new:
        out.update(new)
        old_tc, new_tc = train_config(complete(saved)), train_config(complete(out))
        done = state.epoch + (1 if state.batch else 0)
        changed = [e + 1 for e in range(done) if old_tc.lr_scale(e) != new_tc.lr_scale(e)]
        if changed:
            raise ConfigError(f"the new learning-rate schedule changes epoch {changed[0]}, which the checkpoint "
                              f"has already trained; a resumed run may only change epochs after {done}")
    return out


def train(cfg: dict, out: Path, resume: bool = False, progress: bool = True, stop=None,
          overwrite: bool = False, init=None, init_matching=None) -> dict | None:
    """Train per ``cfg`` into run directory ``out``; returns the last epoch record
    (None when stopped before any epoch finished).

    With ``resume`` the configuration and checkpoint in ``out`` are used
    (``cfg`` may only raise ``epochs`` and change the learning-rate schedule
    of epochs still to come, see :func:`resumed_config`); the run ends with the same
    parameters as an uninterrupted one.  Without it, a run already in ``out`` is
    refused unless ``overwrite`` (its files are then replaced).  ``stop()`` returning
    True ends the run after the current minibatch, with a checkpoint.

    A new run starts from the parameters of the checkpoint ``init``, or takes from the checkpoint
    ``init_matching`` every parameter whose name and shape match (the others start fresh); the
    checkpoints record where they started from.
    """
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if resume and (init or init_matching):
        raise ConfigError("--resume continues from the run's own checkpoint; --init and --init-matching start a "
                          "new run: give one of them")
    if init and init_matching:
        raise ConfigError("--init takes every parameter of a checkpoint and --init-matching those that fit: "
                          "give one of them")
    started = {}
    run = RunDir(out) if resume else output_run(out, overwrite, "train")
    state, params, records = None, None, []
    if resume:
        saved = run.read_config()
        params, meta = load_checkpoint(run.checkpoint_path)
        checkpoint_epoch(run.checkpoint_path, meta)
        try:
            state = TrainState.from_dict(meta["state"])
        except (KeyError, TypeError) as e:
            raise DataError(f"{run.checkpoint_path}: corrupt checkpoint (malformed run state: {e})") from None
        check_unchanged(saved, cfg)
        cfg = resumed_config(saved, cfg, state)
        records = run.metrics()[:state.epoch]
    elif init:
        params = load_checkpoint(init)[0]
        started = {"init": str(init)}
    cfg = complete(cfg)
    data, driver, tc = build(cfg, params)
    try:  # refuses a bad rule, probe, initial parameters or device state before anything is written
        if init_matching:
            params, taken = transplant(driver.get_parameters(), load_checkpoint(init_matching)[0])
            driver.set_parameters(params)
            started = {"init_matching": str(init_matching), "init_taken": taken}
            print(f"parameters taken from {init_matching}: {', '.join(taken) or 'none'}", file=sys.stderr)
        if resume:
            driver.restore_device_state(load_device_state(run.checkpoint_path))
        trainer = make_trainer(cfg, driver, tc, data)
        if resume:
            trainer.optimizer.load_state_dict(load_optimizer_state(run.checkpoint_path))
            run.clean_temporaries()  # of a killed process
        else:
            run.clear()  # a run is only here with overwrite: none of its files may outlive it
        run.write_config(cfg)
    except BaseException:
        driver.close()
        raise
    if stop is None:
        from ..stop import STOP
        stop = lambda: STOP.requested  # noqa: E731
    n_batches = -(-len(data.y_train) // tc.batch_size)
    bar = _progress(n_batches, progress)

    class Stopped(Exception):
        pass

    def checkpoint(st):
        run.save(driver, st, {"config": cfg, **started}, tc.keep_every, trainer.optimizer.state_dict())

    def on_batch(st, stats):
        if bar.n > st.batch or bar.n == 0:
            bar.reset()
            bar.set_description(f"epoch {st.epoch + 1}/{tc.epochs}", refresh=False)
        bar.set_postfix(err=f"{st.stats.errors / max(st.stats.samples, 1):.2%}", refresh=False)
        bar.update(st.batch - bar.n)
        if stop():
            checkpoint(st)
            raise Stopped

    def on_epoch(rec):
        records.append(rec)
        run.write_metrics(records)
        bar.clear()
        align = " ".join(f"{a:+.2f}" for a in rec["alignment"])
        print(f"epoch {rec['epoch']}: train error {rec['train_error']:.2%} test error {rec['test_error']:.2%} "
              f"J {rec['train_cost']:.4f} unconverged {rec['unconverged_free']}/{rec['unconverged_nudged']} "
              f"alignment [{align}]{_angle(rec)} {rec['train_seconds'] + rec['eval_seconds']:.1f}s "
              f"(CPU {rec['cpu_seconds']:.1f}s)", file=sys.stderr)

    try:
        trainer.fit(data, state, on_batch=on_batch, on_checkpoint=checkpoint, on_epoch=on_epoch)
    except Stopped:
        print(f"stopped; checkpoint written to {run.checkpoint_path}", file=sys.stderr)
    finally:
        bar.close()
        driver.close()
    return records[-1] if records else None


def evaluate(path: Path, dataset=None, data_dir=None) -> dict:
    """Error and cost of a run's checkpoint on its (or another) dataset."""
    data, driver, tc, _ = load_run(path, dataset=dataset or None, data_dir=data_dir or None)
    with driver:
        trainer = TwoPhaseTrainer(driver, tc)
        test = trainer.evaluate(data.x_test, data.y_test)
        train = trainer.evaluate(data.x_train, data.y_train)
    return {"dataset": data.name, "train_error": train["error"], "test_error": test["error"],
            "test_cost": test["cost"], "unconverged": test["unconverged"] + train["unconverged"]}


def diagnose(path: Path, probe: int = 40, seed: int = 0, **solver) -> dict:
    """Gradient diagnostics of a run's checkpoint on ``probe`` training samples: per parameter, layer
    pair and overall, |-dJ/dW|, |nu| and the angles of nu and of the two-phase update to -dJ/dW
    (see :func:`analogprop.training.diagnostics.parameter_report`).  Ideal driver only.

    ``solver`` settings that are not None (``tol``, ``dtype``, ``max_steps``) replace the run's, to see
    whether its relaxation error swamps the two-phase signal (h_beta - h0) / beta of the deep layers."""
    from ..training.diagnostics import directions, parameter_report, probe_batch
    from ..training.trainer import one_hot

    cfg = RunDir(path).read_config()
    if cfg.get("driver", "ideal") != "ideal":
        raise ConfigError(f"diagnose needs a run of the ideal driver (the true gradient is of the ideal model); "
                          f"{path} used the {cfg['driver']} driver")
    if int(probe) < 1:
        raise ConfigError(f"the probe batch needs at least 1 sample, got {probe}")
    if int(seed) < 0:
        raise ConfigError(f"the probe batch's seed must be a whole number >= 0, got {seed}")
    data, driver, tc, _ = load_run(path, **solver)
    x, labels = probe_batch(data, probe, seed)
    v = directions(driver.network, driver.solver, x, one_hot(labels, driver.sizes[-1]), tc.beta, tc.symmetric,
                   tc.centered)
    if "grad" not in v:
        raise ConfigError(f"no probe sample of {path} converged in both phases; raise --max-steps or --tol")
    return {"probe": len(labels), "unconverged": v["unconverged"], "cost": v["cost"], "rows": parameter_report(v)}
