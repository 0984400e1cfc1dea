"""Per-epoch gradient diagnostics on a fixed probe batch (section 5).

Measured on the ideal network a driver exposes (``driver.network``):

* ``angle_nu_grad``: angle in degrees between nu (Eq. 18) and -dJ/dW (Eq. 17),
  over all parameters; ``angle_nu_grad_layers`` per layer pair;
* ``angle_update_grad``: angle between the two-phase update actually used
  (Eq. 56, the trainer's beta and nudging) and -dJ/dW; ``angle_update_grad_layers``
  per layer pair;
* ``probe_unconverged``: fraction of probe samples whose free or nudged
  relaxation did not converge (they are left out of the angles);
* ``probe_cost``: J on the probe batch;

With the network's readout outside the dynamics (``net.readout``) J is the
readout's loss and the angles are those of that formulation
(:mod:`analogprop.model.gradients`); the readout pair's update is its exact
gradient, so its angles are 0.
* ``probe_seconds``: time taken by these diagnostics.

The forward/feedback alignment of each pair is in every epoch record already.
"""
from __future__ import annotations

import time

import numpy as np

from ..model.dynamics import output_cost
from ..errors import ConfigError
from ..model.gradients import FixedPoint, angle, flat, neg_gradient, nu, supports, two_phase_estimate
from ..model.network import pair_of
from .trainer import one_hot


class ProbeDiagnostics:
    """Callable ``driver -> dict`` of diagnostics, for ``TwoPhaseTrainer(diagnostics=...)``."""

    def __init__(self, x, labels, n_outputs: int, beta: float, symmetric: bool = False, centered: bool = False):
        if len(labels) == 0:
            raise ConfigError("the diagnostics probe batch is empty")
        self.x = np.asarray(x, float)
        self.y = one_hot(np.asarray(labels), n_outputs)
        self.beta, self.symmetric, self.centered = float(beta), bool(symmetric), bool(centered)

    def __call__(self, driver) -> dict:
        net = getattr(driver, "network", None)
        solver = getattr(driver, "solver", None)
        if not supports(net) or solver is None:
            return {}
        t0 = time.perf_counter()
        out = self._measure(net, solver)
        out["probe_seconds"] = time.perf_counter() - t0
        return out

    def _measure(self, net, solver) -> dict:
        v = directions(net, solver, self.x, self.y, self.beta, self.symmetric, self.centered)
        out = {"probe_unconverged": v["unconverged"], "probe_cost": v["cost"]}
        if "grad" not in v:
            return out
        grad, field = v["grad"], v["nu"]
        pairs = sorted({pair_of(k) for k in grad})
        out["angle_nu_grad"] = angle(field, grad)
        out["angle_update_grad"] = angle(v["update"], grad)
        groups = [[k for k in sorted(grad) if pair_of(k) == p] for p in pairs]
        out["angle_nu_grad_layers"] = [angle(field, grad, names) for names in groups]
        out["angle_update_grad_layers"] = [angle(v["update"], grad, names) for names in groups]
        return out


def directions(net, solver, x, y, beta: float, symmetric: bool = False, centered: bool = False) -> dict:
    """-dJ/dW (Eq. 17), nu (Eq. 18) and the two-phase update (Eq. 56) on the samples of (x, y) whose
    free and nudged relaxations converge (``grad``, ``nu``, ``update``: dicts per parameter; absent
    if none did), with the fraction ``unconverged`` and the mean ``cost`` J."""
    free = solver.solve(net, x)
    nudged = [solver.solve(net, x, y, s * beta, start=free.states) for s in ((1, -1) if symmetric else (1,))]
    ok = free.converged & np.logical_and.reduce([r.converged for r in nudged])
    out = {"unconverged": 1.0 - float(ok.mean()), "cost": float(output_cost(free.output, y, net.readout).mean())}
    if ok.any():
        x, y = x[ok], y[ok]
        fp = FixedPoint.at(net, x, [h[ok] for h in free.states])
        out["grad"], out["nu"] = neg_gradient(net, fp, y), nu(net, fp, y)
        out["update"], _, _ = two_phase_estimate(net, solver, x, y, beta, symmetric, centered=centered)
    return out


def parameter_report(v: dict) -> list[dict]:
    """Per parameter, then per layer pair, then over all: norms of -dJ/dW and nu and the angles of nu
    and of the two-phase update to -dJ/dW (degrees), from :func:`directions`."""
    grad, field, update = v["grad"], v["nu"], v["update"]
    names = sorted(grad)
    groups = [(k, [k]) for k in names]
    groups += [(f"pair {p}", [k for k in names if pair_of(k) == p]) for p in sorted({pair_of(k) for k in names})]
    groups.append(("all", names))
    return [{"name": label, "grad_norm": float(np.linalg.norm(flat(grad, ks))),
             "nu_norm": float(np.linalg.norm(flat(field, ks))),
             "angle_nu_grad": angle(field, grad, ks), "angle_update_grad": angle(update, grad, ks)}
            for label, ks in groups]


def probe_batch(data, size: int, seed: int = 0):
    """A fixed probe batch: ``size`` training samples drawn once with ``seed``."""
    n = len(data.y_train)
    idx = np.sort(np.random.default_rng([seed, 5]).choice(n, min(size, n), replace=False))
    return data.x_train[idx], data.y_train[idx]
