"""Learning rules behind the trainer interface, and the choice between them.

* ``two-phase``: the paper's rule (Eq. 56), :class:`~analogprop.training.trainer.TwoPhaseTrainer`.
* ``gradient``: the baseline, :class:`GradientTrainer`, steps along the true
  gradient -dJ/dW at the free fixed point (Eq. 17), i.e. the steady state of
  Recurrent Backpropagation (Appendix B, Cor. 7).  It needs the ideal network
  (``driver.network``), so it runs with the ideal driver.
"""
from __future__ import annotations

import numpy as np

from .diagnostics import ProbeDiagnostics, probe_batch
from ..errors import ConfigError
from ..model.gradients import FixedPoint, neg_gradient, supports
from .trainer import TwoPhaseTrainer, one_hot


class GradientTrainer(TwoPhaseTrainer):
    """Same schedule, learning rates, optimizer and records as the two-phase trainer; update along -dJ/dW."""

    def __init__(self, driver, config, diagnostics=None):
        if not supports(getattr(driver, "network", None)):
            raise ConfigError(f"the gradient rule needs the ideal dense layered network; driver "
                              f"{type(driver).__name__} does not expose one")
        super().__init__(driver, config, diagnostics)

    def step(self, x, labels, sign: float = 1.0) -> dict:
        """One implicit-gradient update on a minibatch (``sign`` is unused: there is no nudging)."""
        net = self.driver.network
        y = one_hot(labels, self.driver.sizes[-1])
        free = self.driver.relax_free(x)
        grad = neg_gradient(net, FixedPoint.at(net, x, free.states), y)
        self.descend(grad, 1.0)
        return {"samples": len(labels),
                "errors": int(np.count_nonzero(free.output.argmax(axis=1) != labels)),
                "cost": float(self.cost(free.output, y).sum()),
                "unconverged_free": free.n_unconverged,
                "unconverged_nudged": 0}


TRAINERS = {"two-phase": TwoPhaseTrainer, "gradient": GradientTrainer}


def make_trainer(cfg: dict, driver, train_config, data):
    """The trainer of ``cfg["rule"]``, with probe diagnostics when ``cfg["probe"] > 0`` and the driver has an ideal network."""
    rule = cfg.get("rule", "two-phase")
    if rule not in TRAINERS:
        raise ConfigError(f"unknown rule {rule!r} (choose {' or '.join(map(repr, TRAINERS))})")
    probe = cfg.get("probe", 0)
    if not isinstance(probe, (int, np.integer)) or isinstance(probe, bool) or probe < 0:
        raise ConfigError(f"probe must be a whole number >= 0 of samples, got {probe!r}")
    diagnostics = None
    if probe and supports(getattr(driver, "network", None)):
        x, labels = probe_batch(data, probe, train_config.seed)
        diagnostics = ProbeDiagnostics(x, labels, driver.sizes[-1], train_config.beta, train_config.symmetric,
                                       train_config.centered)
    return TRAINERS[rule](driver, train_config, diagnostics)
