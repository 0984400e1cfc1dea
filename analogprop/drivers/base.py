"""The driver interface: the only thing the two-phase trainer sees.

A driver owns a system with programmable parameters ``theta`` and a stable
fixed point.  The trainer asks it to relax freely (beta = 0) and nudged
(beta != 0, starting from the free state), and to report for every
parameter the local quantity ``dmu/dtheta(s0) . (s_beta - s0)`` summed over
the batch (Eq. 26 without the 1/beta), computed from voltages measured in
the two phases.  Device equations stay inside the driver; the ideal model,
a simulated circuit and a lab bench implement the same methods.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError


@dataclass
class Phase:
    """Measurements of one relaxation of a batch.

    ``states`` are the neuron states per dynamic layer (batch, n_k), the last
    one being the output; ``probes`` holds any further measured voltages a
    driver needs for its local rule.  ``residual``, ``steps`` and
    ``converged`` are per sample.
    """

    states: list[np.ndarray]
    residual: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    probes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        return self.states[-1]

    @property
    def n_unconverged(self) -> int:
        return int(np.count_nonzero(~self.converged))


class Driver(ABC):
    """A system the trainer can program, relax and measure."""

    #: Layer sizes (input first, output last) of the network the system realises.
    sizes: tuple[int, ...]

    @abstractmethod
    def get_parameters(self) -> dict[str, np.ndarray]:
        """Current values of the programmable parameters (copies)."""

    @abstractmethod
    def set_parameters(self, params: dict[str, np.ndarray]) -> None:
        """Program the parameters (a driver may clip or quantise them)."""

    @abstractmethod
    def parameter_groups(self) -> dict[str, int]:
        """Learning-rate group of each parameter: the layer pair (k, k+1) it serves."""

    @abstractmethod
    def relax_free(self, x) -> Phase:
        """Clamp inputs x (batch, n_0) and let the system settle (beta = 0)."""

    @abstractmethod
    def relax_nudged(self, x, y, beta: float, start: Phase) -> Phase:
        """Settle with outputs nudged toward y with strength beta, from ``start``."""

    def relax_symmetric(self, x, y, beta: float, start: Phase) -> tuple[Phase, Phase]:
        """The phases nudged by ``+beta`` and ``-beta`` from ``start`` (symmetric nudging), one after the
        other; a driver that can settle both at once overrides this."""
        return self.relax_nudged(x, y, beta, start), self.relax_nudged(x, y, -beta, start)

    @abstractmethod
    def local_update(self, x, free: Phase, nudged: Phase, centered: bool = False) -> dict[str, np.ndarray]:
        """Per parameter, sum over the batch of dmu/dtheta(s0) . (s_nudged - s0).

        ``centered``: every measured presynaptic factor of a weight is taken minus its batch mean (see
        :func:`analogprop.model.gradients.centre`); bias updates are unchanged.  A driver that cannot do this leaves
        the argument out, and the trainer refuses ``centered`` for it."""

    def device_state(self) -> dict[str, np.ndarray]:
        """What a resumed run needs besides the parameters to continue bit for bit, as arrays.

        Nothing for a deterministic system (the default); a simulated
        circuit's as-built devices (write noise) and read-noise generator.
        """
        return {}

    def restore_device_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`device_state`, after the parameters were set."""
        if state:
            raise ConfigError(f"{type(self).__name__} keeps no device state, but the checkpoint has {sorted(state)}")

    def update_parameters(self, delta: dict[str, np.ndarray], decay: dict[str, float] | None = None) -> None:
        """Multiply each parameter named in ``decay`` by its factor (the weight-decay step), then add
        ``delta``, in one write of the result (programming hardware may override)."""
        params, decay = self.get_parameters(), decay or {}
        self.set_parameters({k: params[k] * decay.get(k, 1.0) + delta.get(k, 0.0) for k in params})

    def alignment(self) -> list[float]:
        """Cosine between each forward matrix and its feedback transpose (Fig. 3 right).

        Drivers whose parameters are not weights report their effective weights.
        """
        from ..model.network import Network

        return Network(self.sizes, self.effective_weights()).alignment()

    def alignment_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copies of the matrix pairs :meth:`alignment` compares (for
        :func:`~analogprop.model.network.alignment_drift`)."""
        from ..model.network import Network

        return [(f.copy(), b.copy()) for f, b in Network(self.sizes, self.effective_weights()).alignment_pairs()]

    def effective_weights(self) -> dict[str, np.ndarray]:
        """Parameters expressed as the network weights they realise."""
        return self.get_parameters()

    def close(self) -> None:
        """Release resources; hardware drivers put outputs in a safe state."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
