"""The two-phase trainer (section 4.3, Eq. 56), written against the driver interface only.

Per minibatch: relax freely to s0; relax nudged from s0 with beta to
s_beta; ask the driver for ``sum_batch dmu/dtheta(s0) . (s_beta - s0)`` and
step every parameter by ``lr[pair] * that / (beta * batch)``.  With
``symmetric`` nudging the difference is taken between +beta and -beta
phases (divided by 2 beta), with ``random_sign`` the sign of beta is drawn
per minibatch.  ``lr_decay`` multiplies every learning rate by a factor per
epoch from epoch ``lr_decay_start`` on (1-based); the schedule is a function
of the epoch alone, so a run resumes onto it exactly.  ``weight_decay``
(lambda) adds the regulariser ``lambda/2 ||W||^2`` to the cost, whose
measured term in nu is the back-moving force ``-lambda W`` (Appendix A,
after Eq. 18: synaptic depression); it acts on the weights, not the biases.
``shift`` moves every training image by a random offset of up to that many
pixels per presentation (data augmentation, :mod:`analogprop.data.augment`).
``centered`` takes the presynaptic rates of the weight updates minus their
batch mean (:func:`analogprop.model.gradients.centre`; not in the paper).
``feedback_lr_factor`` multiplies the learning rate of every feedback weight
W_{k,k+1} (1: the paper's rule; 0: fixed random feedback, as in the feedback
alignment of Lillicrap et al. 2016 that section 5 discusses).
``same_update`` gives the forward weights W_{k+1,k} and the feedback weights W_{k,k+1} of every
hidden pair the same change, the mean of their two estimates (after the ``--same-update`` of the
VFCNN of Laborieux et al. 2021; not in the paper, and it needs a driver with an ideal ``network``
that knows how the two correspond).
``optimizer`` turns the estimates into steps (:mod:`analogprop.training.optimizers`:
plain ``sgd``, the paper's, or ``adam``).  ``alignment_drift`` records per
epoch how much the forward and the feedback weights' changes each moved every
pair's alignment (:func:`analogprop.model.network.alignment_drift`, Fig. 3 right).
"""
from __future__ import annotations

import inspect
import math
import numbers
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.augment import check_fits, random_shifts, whole_pixels
from ..model.dynamics import output_cost
from ..errors import ConfigError, DivergedError, check_finite
from ..model.network import alignment_drift
from ..rates import RULE, resolve_lrs
from .optimizers import make_optimizer


#: Largest parameter magnitude a step may produce: 1/eps of float32 (2^23).  Beyond it a unit-size
#: step is below the parameter's resolution in the coarsest solver dtype, and since every rate a
#: weight multiplies lies in [0, 1], no trained network needs it: such a step means divergence.
PARAMETER_LIMIT = float(2 ** 23)


@dataclass
class TrainConfig:
    beta: float = 0.5
    lrs: tuple[float, ...] | None = None  # per layer pair; one for all; None: the rule of analogprop.rates
    batch_size: int = 20
    epochs: int = 10
    seed: int = 0
    symmetric: bool = False
    random_sign: bool = False
    checkpoint_every: int = 0  # minibatches between mid-epoch checkpoints (0: per epoch only)
    keep_every: int = 0  # epochs between kept snapshots of the checkpoint, to branch runs from (0: none)
    lr_decay: float = 1.0  # learning-rate factor per epoch from lr_decay_start on (1: constant)
    lr_decay_start: int = 1  # first (1-based) epoch trained with a decayed learning rate
    weight_decay: float = 0.0  # lambda of the regulariser lambda/2 ||W||^2 on every weight (not biases)
    shift: int = 0  # largest random translation (pixels per axis) of a training image; 0: none
    centered: bool = False  # presynaptic rates minus their batch mean in the weight updates (gradients.centre)
    optimizer: str = "sgd"  # "sgd" (the paper's) or "adam" (analogprop.training.optimizers)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    feedback_lr_factor: float = 1.0  # factor on the feedback weights' learning rates (0: fixed feedback)
    alignment_drift: bool = False  # record each update's forward and feedback parts of the alignment change
    same_update: bool = False  # forward and feedback weights of a pair both take their mean update (VFCNN)

    def validate(self, n_pairs: int | None = None) -> "TrainConfig":
        """Check (and normalise) every setting for a network of ``n_pairs`` layer pairs (None: every
        setting on its own, the number of learning rates unchecked); ConfigError names it."""
        self.beta = _real("beta", self.beta, "a finite number > 0", lambda v: v > 0)
        if self.lrs is not None:
            if isinstance(self.lrs, (str, bytes)) or not isinstance(self.lrs, (list, tuple, np.ndarray)):
                raise ConfigError(f"lrs must be a list of learning rates, one per layer pair, got {self.lrs!r}")
            self.lrs = tuple(_real(f"learning rate {i}", v, "a finite number >= 0", lambda v: v >= 0)
                             for i, v in enumerate(self.lrs))
            if not self.lrs:
                raise ConfigError(f"lrs holds no learning rate; give one per layer pair, one for all, or none for "
                                  f"the default {RULE}")
        if n_pairs is not None:
            self.lrs = resolve_lrs(self.lrs, n_pairs)
        for name, lo in (("batch_size", 1), ("epochs", 1), ("seed", 0), ("lr_decay_start", 1),
                         ("checkpoint_every", 0), ("keep_every", 0)):
            setattr(self, name, _whole(name, getattr(self, name), lo))
        self.lr_decay = _real("lr_decay", self.lr_decay, "a factor in (0, 1]", lambda v: 0 < v <= 1)
        self.weight_decay = _real("weight_decay", self.weight_decay, "a finite number >= 0", lambda v: v >= 0)
        self.shift = whole_pixels(self.shift)
        for name in ("symmetric", "random_sign", "centered", "alignment_drift", "same_update"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        try:
            betas = tuple(float(b) for b in self.adam_betas)
        except (TypeError, ValueError):
            betas = ()
        if len(betas) != 2:
            raise ConfigError(f"adam_betas must be two decay rates, got {self.adam_betas!r}")
        self.adam_betas = betas
        self.adam_eps = _real("adam_eps", self.adam_eps, "a finite number > 0", lambda v: v > 0)
        self.feedback_lr_factor = _real("feedback_lr_factor", self.feedback_lr_factor,
                                        "a finite number >= 0 (1: the paper's rule, 0: fixed feedback)",
                                        lambda v: v >= 0)
        self.make_optimizer()  # refuses an unknown name or bad settings now
        return self

    def make_optimizer(self):
        return make_optimizer(self.optimizer, self.adam_betas, self.adam_eps)

    def lr_scale(self, epoch: int) -> float:
        """Factor on every learning rate in 0-based ``epoch``."""
        return float(self.lr_decay) ** max(0, epoch + 2 - int(self.lr_decay_start))

    def to_dict(self):
        d = asdict(self)
        d["lrs"] = None if self.lrs is None else list(self.lrs)
        d["adam_betas"] = list(self.adam_betas)
        return d


def _is_finite(value) -> bool:
    """Whether ``value`` is a number (not a truth value) that a float holds finitely."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _real(name: str, value, accepted: str, ok) -> float:
    """``value`` as a float if it is a finite number with ``ok(value)``; else ConfigError saying ``accepted``."""
    if _is_finite(value) and ok(value):
        return float(value)
    raise ConfigError(f"{name} must be {accepted}, got {value!r}")


def _whole(name: str, value, lo: int) -> int:
    """``value`` as an int if it is a whole number >= ``lo``; else ConfigError."""
    if _is_finite(value) and float(value).is_integer() and value >= lo:
        return int(value)
    raise ConfigError(f"{name} must be a whole number >= {lo}, got {value!r}")


def one_hot(labels, n):
    out = np.zeros((len(labels), n))
    out[np.arange(len(labels)), labels] = 1.0
    return out


@dataclass
class EpochStats:
    """Running sums over the minibatches of one epoch (kept in checkpoints)."""

    samples: int = 0
    errors: int = 0
    cost: float = 0.0
    unconverged_free: int = 0
    unconverged_nudged: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads)
    drift_forward: list = field(default_factory=list)  # per pair, summed alignment_drift parts
    drift_feedback: list = field(default_factory=list)

    def add(self, other: dict):
        for k, v in other.items():
            old = getattr(self, k)
            if isinstance(old, list):
                v = [a + b for a, b in zip(old, v)] if old else list(v)
            else:
                v = old + v
            setattr(self, k, v)


@dataclass
class TrainState:
    """Where a run is: the epoch and minibatch to do next, and the epoch so far."""

    epoch: int = 0
    batch: int = 0
    stats: EpochStats = field(default_factory=EpochStats)
    alignment_start: list | None = None  # before the first minibatch (Fig. 3 right, epoch 0)

    def to_dict(self):
        return {"epoch": self.epoch, "batch": self.batch, "stats": asdict(self.stats),
                "alignment_start": self.alignment_start}

    @classmethod
    def from_dict(cls, d):
        return cls(d["epoch"], d["batch"], EpochStats(**d["stats"]), d.get("alignment_start"))


def check_data(sizes, x, labels, name="data"):
    """Refuse inputs that do not fit the network before any work starts."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ConfigError(f"{name} inputs have shape {x.shape}; the network expects (n, {sizes[0]})")
    check_finite(f"{name} inputs", x)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise ConfigError(f"{name} has {labels.shape} labels for {x.shape[0]} inputs")
    if labels.size and (labels.min() < 0 or labels.max() >= sizes[-1]):
        raise ConfigError(f"{name} labels span 0..{int(labels.max())} but the output layer has {sizes[-1]} units")


class TwoPhaseTrainer:
    """Trains whatever a :class:`~analogprop.drivers.Driver` realises."""

    def __init__(self, driver, config: TrainConfig, diagnostics=None):
        """``diagnostics(driver) -> dict``, if given, adds its entries to every epoch record."""
        self.driver = driver
        self.config = config.validate(len(driver.sizes) - 1)
        self.groups = driver.parameter_groups()
        if self.config.centered and "centered" not in inspect.signature(driver.local_update).parameters:
            raise ConfigError(f"{type(driver).__name__}.local_update takes no 'centered' argument, so it cannot "
                              "centre the presynaptic rates; train without centered")
        if self.config.same_update and not hasattr(getattr(driver, "network", None), "alignment_pairs"):
            raise ConfigError(f"same_update needs a driver with an ideal network to pair forward and feedback "
                              f"weights; {type(driver).__name__} has none: train without same_update")
        self.diagnostics = diagnostics
        self.optimizer = self.config.make_optimizer()  # its state is checkpointed with the run
        self.lr_scale = 1.0  # set per epoch by fit() from the schedule

    def descend(self, raw: dict, denom: float) -> None:
        """Step every parameter along its estimate ``raw / denom`` through the optimizer, then :meth:`apply`."""
        self.apply(self.optimizer.step(raw, denom, {k: self.lr(k) for k in raw}))

    def apply(self, delta: dict) -> None:
        """Move the parameters by ``delta`` plus the weight-decay step ``-lr lambda W`` (every weight
        scaled by ``1 - lr lambda``), refusing a step that is not finite or that would take a
        parameter beyond :data:`PARAMETER_LIMIT`: the parameters stay as they were, and so does
        the last checkpoint."""
        hint = (f"(learning rates {list(self.config.lrs)}, beta {self.config.beta}); "
                "lower them and resume from the last checkpoint")
        bad = sorted(k for k, v in delta.items() if not np.all(np.isfinite(v)))
        if bad:
            raise DivergedError(f"training diverged: the update of {', '.join(bad)} is not finite {hint}")
        lam = self.config.weight_decay
        decay = {k: 1.0 - self.lr(k) * lam for k in delta if not k.startswith("bias")} if lam else {}
        params = self.driver.get_parameters()
        for k in sorted(set(delta) & set(params)):  # a driver refuses unknown names itself
            size = float(np.max(np.abs(params[k] * decay.get(k, 1.0) + delta[k]), initial=0.0))
            if not size <= PARAMETER_LIMIT:
                raise DivergedError(f"training diverged: the update of {k} would take it to magnitude {size:.3g}, "
                                    f"beyond 2^23 = {PARAMETER_LIMIT:.3g} (1/eps of float32, the coarsest solver "
                                    f"dtype: a unit step is lost there, and no network of rates in [0, 1] "
                                    f"needs such weights) {hint}")
        self.driver.update_parameters(delta, decay or None)

    def lr(self, name: str) -> float:
        """Learning rate of parameter ``name`` in the current epoch."""
        factor = self.config.feedback_lr_factor if name.startswith("bwd") else 1.0
        return self.lr_scale * self.config.lrs[self.groups[name]] * factor

    # -- one minibatch -------------------------------------------------------
    def step(self, x, labels, sign: float = 1.0) -> dict:
        """One two-phase update on a minibatch; returns its statistics."""
        cfg, n_out = self.config, self.driver.sizes[-1]
        y = one_hot(labels, n_out)
        free = self.driver.relax_free(x)
        beta = sign * cfg.beta
        if cfg.symmetric:
            nudged, other = self.driver.relax_symmetric(x, y, beta, start=free)
        else:
            nudged = self.driver.relax_nudged(x, y, beta, start=free)
        kw = {"centered": True} if cfg.centered else {}  # drivers without centring keep working
        upd = self.driver.local_update(x, free, nudged, **kw)
        unconv_n = nudged.n_unconverged
        scale = beta
        if cfg.symmetric:
            minus = self.driver.local_update(x, free, other, **kw)
            upd = {k: upd[k] - minus[k] for k in upd}
            unconv_n += other.n_unconverged
            scale = 2 * beta
        if cfg.same_update:
            upd = self.same_update(upd)
        n = len(labels)
        self.descend(upd, scale * n)
        return {"samples": n,
                "errors": int(np.count_nonzero(free.output.argmax(axis=1) != labels)),
                "cost": float(self.cost(free.output, y).sum()),
                "unconverged_free": free.n_unconverged,
                "unconverged_nudged": unconv_n}

    def same_update(self, upd: dict) -> dict:
        """``upd`` with fwd{k} and bwd{k} of every hidden pair replaced by their mean (bwd{k} mirrored)."""
        net, out = self.driver.network, dict(upd)
        for k in range(1, net.n_dynamic):
            f, b = f"fwd{k}", f"bwd{k}"
            if f in upd and b in upd:
                mean = 0.5 * (upd[f] + net._mirror(k, upd[b]))
                out[f], out[b] = mean, np.ascontiguousarray(net._mirror(k, mean))
        return out

    # -- evaluation ----------------------------------------------------------
    def cost(self, output, y):
        """Per-sample cost of output states: Eq. 10, or the cross-entropy of a driver's softmax readout."""
        return output_cost(output, y, getattr(self.driver, "readout", "dynamic"))

    def evaluate(self, x, labels, batch_size: int = 500) -> dict:
        """Free-phase predictions (Eq. 57): error rate, mean cost J, unconverged count."""
        check_data(self.driver.sizes, x, labels, "evaluation data")
        n_out = self.driver.sizes[-1]
        errors, total, unconv = 0, 0.0, 0
        for i in range(0, len(labels), batch_size):
            xb, lb = x[i:i + batch_size], labels[i:i + batch_size]
            free = self.driver.relax_free(xb)
            errors += int(np.count_nonzero(free.output.argmax(axis=1) != lb))
            total += float(self.cost(free.output, one_hot(lb, n_out)).sum())
            unconv += free.n_unconverged
        n = max(len(labels), 1)
        return {"error": errors / n, "cost": total / n, "unconverged": unconv}

    # -- epochs ----------------------------------------------------------------
    def epoch_plan(self, epoch: int, n: int):
        """Sample order and beta signs of an epoch: a function of (seed, epoch) only.
        (The image shifts of minibatch b are drawn from (seed, epoch, b).)"""
        rng = np.random.default_rng([self.config.seed, epoch])
        order = rng.permutation(n)
        n_batches = -(-n // self.config.batch_size)
        signs = rng.choice([-1.0, 1.0], n_batches) if self.config.random_sign else np.ones(n_batches)
        return order, signs

    def fit(self, data, state: TrainState | None = None, on_batch=None, on_checkpoint=None, on_epoch=None):
        """Train for ``config.epochs`` epochs from ``state`` (resumable).

        Callbacks: ``on_batch(state, stats)`` after every minibatch,
        ``on_checkpoint(state)`` every ``checkpoint_every`` minibatches and at
        the end of each epoch (after ``on_epoch(record)``).
        """
        cfg = self.config
        check_data(self.driver.sizes, data.x_train, data.y_train, "training data")
        check_data(self.driver.sizes, data.x_test, data.y_test, "test data")
        check_fits(cfg.shift, data.image_shape)
        state = state or TrainState()
        if state.epoch == state.batch == 0:
            state.alignment_start = self.driver.alignment()
        n = len(data.y_train)
        while state.epoch < cfg.epochs:
            order, signs = self.epoch_plan(state.epoch, n)
            self.lr_scale = cfg.lr_scale(state.epoch)
            for b in range(state.batch, len(signs)):
                t0, c0 = time.perf_counter(), time.process_time()
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                x = data.x_train[idx]
                if cfg.shift:
                    x = random_shifts(x, data.image_shape, cfg.shift, np.random.default_rng([cfg.seed, state.epoch, b]))
                before = self.driver.alignment_pairs() if cfg.alignment_drift else None
                stats = self.step(x, data.y_train[idx], signs[b])
                if before is not None:
                    stats["drift_forward"], stats["drift_feedback"] = alignment_drift(
                        before, self.driver.alignment_pairs())
                stats["seconds"] = time.perf_counter() - t0
                stats["cpu_seconds"] = time.process_time() - c0
                state.stats.add(stats)
                state.batch = b + 1
                if on_batch:
                    on_batch(state, stats)
                if cfg.checkpoint_every and state.batch % cfg.checkpoint_every == 0 and on_checkpoint:
                    on_checkpoint(state)
            record = self.epoch_record(state, data)
            state.epoch, state.batch, state.stats = state.epoch + 1, 0, EpochStats()
            if on_epoch:
                on_epoch(record)
            if on_checkpoint:
                on_checkpoint(state)
        return state

    def epoch_record(self, state: TrainState, data) -> dict:
        s = state.stats
        t0, c0 = time.perf_counter(), time.process_time()
        test = self.evaluate(data.x_test, data.y_test)
        record = {"epoch": state.epoch + 1,
                  "train_error": s.errors / max(s.samples, 1),
                  "train_cost": s.cost / max(s.samples, 1),
                  "test_error": test["error"],
                  "test_cost": test["cost"],
                  "unconverged_free": s.unconverged_free,
                  "unconverged_nudged": s.unconverged_nudged,
                  "unconverged_test": test["unconverged"],
                  "alignment": self.driver.alignment(),
                  "lr_scale": self.lr_scale,
                  "train_seconds": s.seconds}
        if self.config.alignment_drift:
            record["alignment_drift_forward"] = s.drift_forward
            record["alignment_drift_feedback"] = s.drift_feedback
        if state.epoch == 0 and state.alignment_start is not None:
            record["alignment_start"] = state.alignment_start
        if self.diagnostics is not None:
            record.update(self.diagnostics(self.driver))
        record["eval_seconds"] = time.perf_counter() - t0
        record["cpu_eval_seconds"] = time.process_time() - c0
        record["cpu_seconds"] = s.cpu_seconds + record["cpu_eval_seconds"]  # the epoch's, training and evaluation
        return record
