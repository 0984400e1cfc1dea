"""Learning rates per layer pair (input side first, the ``alpha_k`` of Table 1) for a network of any depth.

Below both the configuration tree (which resolves rates for config.json) and the trainer (which resolves
them for a :class:`~analogprop.training.trainer.TrainConfig` built directly): one rule for both.
"""
from __future__ import annotations

from .errors import ConfigError

#: Default rate of pair k (input side first): FIRST_RATE * RATE_RATIO**k, i.e. 0.5, 0.2 for 64-32-10
#: and 0.5, 0.2, 0.08, ... for deeper networks: rates fall toward the output, as in Table 1.
FIRST_RATE = 0.5
RATE_RATIO = 0.4
RULE = f"{FIRST_RATE} * {RATE_RATIO}**k for pair k (k = 0 at the input)"


def default_lrs(n_pairs: int) -> tuple[float, ...]:
    """The default rule's rates for ``n_pairs`` layer pairs (rounded to 12 significant digits)."""
    return tuple(float(f"{FIRST_RATE * RATE_RATIO ** k:.12g}") for k in range(n_pairs))


def resolve_lrs(lrs, n_pairs: int) -> tuple[float, ...]:
    """Rates for ``n_pairs`` pairs: the default rule when ``lrs`` is None, one given rate for every pair,
    or exactly ``n_pairs`` given rates."""
    if lrs is None:
        return default_lrs(n_pairs)
    lrs = tuple(float(v) for v in lrs)
    if len(lrs) == 1:
        return lrs * n_pairs
    if len(lrs) != n_pairs:
        raise ConfigError(f"got {len(lrs)} learning rates {list(lrs)}; the network has {n_pairs} layer pairs "
                          f"(give one rate for every pair, {n_pairs} rates, or none for the default {RULE})")
    return lrs
