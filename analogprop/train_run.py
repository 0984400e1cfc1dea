"""A training run on disk: build from config, train with checkpoints, resume, evaluate."""
from __future__ import annotations

import sys
from pathlib import Path

from .build import build, complete, load_run, train_config
from .errors import ConfigError
from .rules import make_trainer
from .runs import RunDir, load_checkpoint, load_device_state, load_optimizer_state
from .trainer import TrainState, TwoPhaseTrainer


def _progress(total, enabled):
    """A progress bar on stderr when it is a terminal (``disable=None``) and ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, disable=None if enabled else True, leave=False, file=sys.stderr, dynamic_ncols=True)


def _angle(rec) -> str:
    return f" angle(nu, -dJ/dW) {rec['angle_nu_grad']:.1f} deg" if "angle_nu_grad" in rec else ""


SCHEDULE_KEYS = ("lr_decay", "lr_decay_start")
BOOKKEEPING_KEYS = ("epochs", "checkpoint_every", "keep_every")  # change no trained parameter


def resumed_config(saved: dict, cfg: dict, state: TrainState) -> dict:
    """The configuration a resumed run continues with: ``saved``, with ``epochs``, the
    checkpoint and snapshot intervals and the learning-rate schedule taken from ``cfg`` when given.

    A new schedule must give the same learning rates as the saved one in every
    epoch already (partly) trained, so the resumed run is the run that would
    have used it from the start.
    """
    out = dict(saved)
    out.update({k: cfg[k] for k in BOOKKEEPING_KEYS if cfg.get(k) is not None})
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


def train(cfg: dict, out: Path, resume: bool = False, progress: bool = True, stop=None) -> dict | None:
    """Train per ``cfg`` into run directory ``out``; returns the last epoch record
    (None when stopped before any epoch finished).

    With ``resume`` the configuration and checkpoint in ``out`` are used
    (``cfg`` may only raise ``epochs`` and change the learning-rate schedule
    of epochs still to come, see :func:`resumed_config`); the run ends with the same
    parameters as an uninterrupted one.  ``stop()`` returning True ends the
    run after the current minibatch, with a checkpoint.
    """
    run = RunDir(out)
    state, params = None, None
    if resume:
        saved = run.read_config()
        params, meta = load_checkpoint(run.checkpoint_path)
        state = TrainState.from_dict(meta["state"])
        cfg = resumed_config(saved, cfg, state)
    cfg = complete(cfg)
    data, driver, tc = build(cfg, params)
    try:  # refuses a bad rule, probe or device state before anything is written
        if resume:
            driver.restore_device_state(load_device_state(run.checkpoint_path))
        trainer = make_trainer(cfg, driver, tc, data)
        if resume:
            trainer.optimizer.load_state_dict(load_optimizer_state(run.checkpoint_path))
    except BaseException:
        driver.close()
        raise
    run.write_config(cfg)
    if stop is None:
        from .cli import STOP
        stop = lambda: STOP.requested  # noqa: E731
    records = run.metrics()
    if state is not None:
        records = records[:state.epoch]
    n_batches = -(-len(data.y_train) // tc.batch_size)
    bar = _progress(n_batches, progress)

    class Stopped(Exception):
        pass

    def checkpoint(st):
        run.save(driver, st, {"config": cfg}, tc.keep_every, trainer.optimizer.state_dict())

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
              f"alignment [{align}]{_angle(rec)} {rec['train_seconds'] + rec['eval_seconds']:.1f}s", file=sys.stderr)

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
    (see :func:`analogprop.diagnostics.parameter_report`).  Ideal driver only.

    ``solver`` settings that are not None (``tol``, ``dtype``, ``max_steps``) replace the run's, to see
    whether its relaxation error swamps the two-phase signal (h_beta - h0) / beta of the deep layers."""
    from .diagnostics import directions, parameter_report, probe_batch
    from .trainer import one_hot

    cfg = RunDir(path).read_config()
    if cfg.get("driver", "ideal") != "ideal":
        raise ConfigError(f"diagnose needs a run of the ideal driver (the true gradient is of the ideal model); "
                          f"{path} used the {cfg['driver']} driver")
    if int(probe) < 1:
        raise ConfigError(f"the probe batch needs at least 1 sample, got {probe}")
    data, driver, tc, _ = load_run(path, **solver)
    x, labels = probe_batch(data, probe, seed)
    v = directions(driver.network, driver.solver, x, one_hot(labels, driver.sizes[-1]), tc.beta, tc.symmetric,
                   tc.centered)
    if "grad" not in v:
        raise ConfigError(f"no probe sample of {path} converged in both phases; raise --max-steps or --tol")
    return {"probe": len(labels), "unconverged": v["unconverged"], "cost": v["cost"], "rows": parameter_report(v)}
