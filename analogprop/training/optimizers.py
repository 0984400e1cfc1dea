"""How a parameter moves given its two-phase estimate (the minimizer of the trainer).

The trainer hands over, per parameter, the summed estimate ``raw`` of Eq. 56
(or -dJ/dW of the baseline rule) with its normaliser ``denom`` (beta times
the batch size), so that the estimate of the descent direction is
``g = raw / denom``, and the parameter's current learning rate.

* :class:`SGD`: ``lr g``, the paper's update (Appendix C).
* :class:`Adam`: ``lr m_hat / (sqrt(v_hat) + eps)`` from running means of g
  and g^2 per parameter entry (Kingma & Ba 2015; not in the paper).  Every
  entry's moments are its own, so the update stays local to the synapse.
  Weight decay stays the trainer's ``-lr lambda W`` (decoupled, as AdamW).

An optimizer's state (the moments) is saved in every checkpoint, so a
resumed run continues exactly.  numpy has no optimizer and the deep-learning
frameworks' ones work on their own tensors, hence these 60 lines.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError


class SGD:
    """Plain gradient steps: no state."""

    name = "sgd"

    def step(self, raw: dict, denom: float, lrs: dict) -> dict:
        return {k: (lrs[k] / denom) * v for k, v in raw.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if state:
            raise DataError(f"the checkpoint holds optimizer state {sorted(state)[:3]}..., but the run uses sgd")


class Adam:
    """Adam with bias correction; ``betas`` are the decay rates of the first and second moments."""

    name = "adam"

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8):
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ConfigError(f"adam_betas must be two decay rates in [0, 1), got {list(betas)}")
        if not (np.isfinite(eps) and eps > 0):
            raise ConfigError(f"adam_eps must be a finite number > 0, got {eps}")
        self.b1, self.b2, self.eps = b1, b2, float(eps)
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, raw: dict, denom: float, lrs: dict) -> dict:
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        out = {}
        for k, r in raw.items():
            g = r / denom
            m = self.m.setdefault(k, np.zeros_like(g))
            v = self.v.setdefault(k, np.zeros_like(g))
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            out[k] = (lrs[k] / c1) * m / (np.sqrt(v / c2) + self.eps)
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"t": np.array(self.t)}
        state.update({f"m/{k}": v for k, v in self.m.items()})
        state.update({f"v/{k}": v for k, v in self.v.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "t" not in state:
            raise DataError("the checkpoint holds no Adam moments (written by an sgd run, or exported without "
                            "them), so the run cannot resume exactly; start a new run with --init instead")
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("m/")}
        self.v = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("v/")}


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, betas=(0.9, 0.999), eps: float = 1e-8):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`)."""
    if name == "sgd":
        return SGD()
    if name == "adam":
        return Adam(betas, eps)
    raise ConfigError(f"unknown optimizer {name!r} (choose {' or '.join(map(repr, OPTIMIZERS))})")
