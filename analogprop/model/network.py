"""Layered directed network: sizes and untied forward/feedback weights.

Layer 0 is the clamped input x; layers 1..L evolve; layer L is the output
(the paper's h_0, Eq. 6).  Parameters are named

* ``fwd{k}``  shape (n_{k+1}, n_k): forward weights W_{k+1,k}, k = 0..L-1
* ``bwd{k}``  shape (n_k, n_{k+1}): feedback weights W_{k,k+1}, k = 1..L-1
* ``bias{k}`` shape (n_k,): bias of layer k, k = 1..L (optional)

Forward and feedback weights are independent unless ``tied`` (the
symmetric Hopfield/EP special case, where ``bwd{k} == fwd{k}.T``).

``readout`` places the output layer: ``"dynamic"`` (the paper's, Eq. 6-8: the
output is the L-th dynamic layer and sends feedback ``bwd{L-1}`` down), or
outside the dynamics as in the VFCNN of Laborieux et al. (2021): only layers
1..L-1 relax, the output is a function of the top hidden layer, p =
softmax(W rho(h_{L-1}) + b) (``"softmax"``, cross-entropy cost) or its clipped
(unclipped with ``linear_output``) linear value (``"linear"``, squared error);
``bwd{L-1}`` does not exist.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, check_finite

_NAME = re.compile(r"^(fwd|bwd|bias)(\d+)$")


def parse_sizes(text) -> tuple[int, ...]:
    """Parse ``"64-32-10"`` (or a sequence of ints) into layer sizes."""
    if isinstance(text, str):
        parts = text.strip().split("-")
        for i, p in enumerate(parts):
            if not p.strip().isdigit():
                raise ConfigError(f"architecture {text!r}: layer {i} {p!r} is not a whole number of units "
                                  "(sizes joined by '-', e.g. 64-32-10)")
        sizes = tuple(int(p) for p in parts)
    else:
        sizes = tuple(int(s) for s in text)
    if len(sizes) < 2:
        raise ConfigError(f"architecture {text!r} needs at least an input and an output layer")
    for i, n in enumerate(sizes):
        if n <= 0:
            raise ConfigError(f"architecture {text!r}: layer {i} has size {n}; every layer needs at least one unit")
    return sizes


def pair_of(name: str) -> int:
    """Index k of the layer pair (k, k+1) a parameter belongs to (learning-rate group)."""
    kind, k = _NAME.match(name).groups()
    return int(k) - 1 if kind == "bias" else int(k)


FEEDBACK_INITS = ("random", "mirrored")
READOUTS = ("dynamic", "softmax", "linear")


def check_readout(name: str, n_layers: int) -> str:
    """``name`` if it is one of :data:`READOUTS` and fits a network of ``n_layers`` dynamic layers."""
    if name not in READOUTS:
        raise ConfigError(f"unknown readout {name!r} (choose one of {', '.join(READOUTS)})")
    if name != "dynamic" and n_layers < 2:
        raise ConfigError(f"readout {name!r} reads the top hidden layer; the network has no hidden layer")
    return name


def check_feedback_init(name: str) -> bool:
    """True for ``"mirrored"``, False for ``"random"``; anything else is refused."""
    if name not in FEEDBACK_INITS:
        raise ConfigError(f"unknown feedback_init {name!r} (choose one of {', '.join(FEEDBACK_INITS)})")
    return name == "mirrored"


@dataclass
class Network:
    sizes: tuple[int, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    tied: bool = False
    linear_output: bool = False  # Eq. 6 read literally: the output state is not clipped to [0, 1]
    readout: str = "dynamic"  # or "softmax" / "linear": the output outside the dynamics (module docstring)

    @classmethod
    def create(cls, sizes, seed: int = 0, bias: bool = True, tied: bool = False, dtype=np.float64,
               linear_output: bool = False, feedback_init: str = "random", readout: str = "dynamic") -> "Network":
        """Glorot-Bengio uniform initialisation; every matrix drawn independently, except
        the feedback matrices of a tied network or with ``feedback_init="mirrored"``
        (the transposes of the forward ones at the start; untied, they then learn apart)."""
        mirrored = check_feedback_init(feedback_init) or tied
        sizes = parse_sizes(sizes)
        check_readout(readout, len(sizes) - 1)
        rng = np.random.default_rng(seed)
        params = {}
        for k in range(len(sizes) - 1):
            a, b = sizes[k], sizes[k + 1]
            lim = np.sqrt(6.0 / (a + b))
            params[f"fwd{k}"] = rng.uniform(-lim, lim, (b, a)).astype(dtype)
            if 1 <= k < len(sizes) - 1 - (readout != "dynamic"):
                params[f"bwd{k}"] = (params[f"fwd{k}"].T.copy() if mirrored
                                     else rng.uniform(-lim, lim, (a, b)).astype(dtype))
            if bias:
                params[f"bias{k + 1}"] = np.zeros(b, dtype)
        return cls(sizes, params, tied, linear_output, readout)

    @property
    def n_layers(self) -> int:
        """Number of dynamic layers L (hidden layers plus output)."""
        return len(self.sizes) - 1

    @property
    def n_pairs(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_dynamic(self) -> int:
        """Number of layers that relax: L, or L - 1 with the readout outside the dynamics."""
        return self.n_layers - (self.readout != "dynamic")

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        s = self.sizes
        shapes = {f"fwd{k}": (s[k + 1], s[k]) for k in range(len(s) - 1)}
        shapes.update({f"bwd{k}": (s[k], s[k + 1]) for k in range(1, self.n_dynamic)})
        if any(n.startswith("bias") for n in self.params):
            shapes.update({f"bias{k}": (s[k],) for k in range(1, len(s))})
        return shapes

    def validate(self) -> "Network":
        """Check names, shapes and finiteness of every parameter."""
        check_readout(self.readout, self.n_layers)
        shapes = self.expected_shapes()
        missing = sorted(set(shapes) - set(self.params))
        extra = sorted(set(self.params) - set(shapes))
        if missing or extra:
            raise ConfigError(f"network {'-'.join(map(str, self.sizes))}: missing parameters {missing}, unexpected {extra}")
        for name, shape in shapes.items():
            if self.params[name].shape != shape:
                raise ConfigError(f"parameter {name} has shape {self.params[name].shape}, expected {shape}")
            check_finite(f"parameter {name}", self.params[name])
        return self

    def without_pooling(self, k: int) -> "Network":
        """Dense networks have no pooling to remove (see ConvNetwork.without_pooling)."""
        raise ConfigError(f"network {'-'.join(map(str, self.sizes))}: pair {k} is not a pooled convolution")

    def deepened(self, k: int) -> "Network":
        """This network with a copy of hidden layer k inserted right above it (Net2Net-style deepening).

        The new pair k -> k+1 has the identity as forward matrix, zero bias and zero
        feedback; the pairs above move up one index with their parameters.  Layer k then
        settles to its feed-forward state clip(W_{k,k-1} rho(h_{k-1}) + b_k) and the copy
        adds the feedback that layer k received (Eq. 6-8).  For k = 1, wherever that
        feed-forward drive lies in [0, 1], the copy's fixed point is the old layer's and every
        layer above keeps its state, so a trained network starts near its trained function
        (elsewhere the clip is taken before the feedback is added; for k > 1 the layers below
        also lose the feedback layer k had).
        """
        if self.readout != "dynamic":
            raise ConfigError(f"a network with the {self.readout} readout cannot be deepened")
        if self.tied:
            raise ConfigError("a tied network cannot be deepened: the new pair's feedback would be its identity forward matrix")
        if not 1 <= k < self.n_layers:
            raise ConfigError(f"network {'-'.join(map(str, self.sizes))}: layer {k} is not a hidden layer "
                              f"(choose 1 to {self.n_layers - 1})")
        n, dtype = self.sizes[k], self.params["fwd0"].dtype
        params = {}
        for name, v in self.params.items():
            kind, j = _NAME.match(name).groups()
            moves = int(j) >= (k + 1 if kind == "bias" else k)
            params[f"{kind}{int(j) + moves}"] = v.copy()
        params[f"fwd{k}"], params[f"bwd{k}"] = np.eye(n, dtype=dtype), np.zeros((n, n), dtype)
        if f"bias{k}" in self.params:
            params[f"bias{k + 1}"] = np.zeros(n, dtype)
        sizes = self.sizes[:k + 1] + self.sizes[k:]
        return Network(sizes, params, False, self.linear_output).validate()

    def copy(self) -> "Network":
        return Network(self.sizes, {k: v.copy() for k, v in self.params.items()}, self.tied, self.linear_output,
                       self.readout)

    def bounds(self) -> list[tuple[float, float]]:
        """Range of each layer's state (the output's too, when it is a readout): [0, 1] (the clip of
        Eq. 59), the output unbounded when ``linear_output``."""
        out = [(0.0, 1.0)] * self.n_layers
        if self.linear_output:
            out[-1] = (-np.inf, np.inf)
        return out

    def _mirror(self, k: int, w):
        """The feedback parameter that ties to forward parameter w of pair k (and back)."""
        return w.T

    def mirror_feedback(self) -> None:
        """Set every feedback parameter to the mirror of its forward one (what keeps a tied network tied)."""
        for k in range(1, self.n_dynamic):
            self.params[f"bwd{k}"] = self._mirror(k, self.params[f"fwd{k}"]).copy()

    def apply_update(self, delta: dict[str, np.ndarray]) -> None:
        """Add ``delta`` to the parameters; for tied networks both directions move together."""
        for name, d in delta.items():
            if self.tied and name.startswith("bwd"):
                continue
            k = name[3:]
            if self.tied and name.startswith("fwd") and f"bwd{k}" in delta:
                d = d + self._mirror(int(k), delta[f"bwd{k}"])
            self.params[name] += d
        if self.tied:
            self.mirror_feedback()

    # -- the connections, as the solvers and drivers use them ---------------
    # A subclass with other connection types (e.g. convolutions) overrides
    # these methods; states are always (batch, n_k) arrays.
    def input_drive(self, rx):
        """Input to layer 1 from the clamped input, rho(x) -> W_{1,0} rho(x) + bias_1."""
        d = rx @ self.params["fwd0"].T
        if "bias1" in self.params:
            d += self.params["bias1"]
        return d

    def drive(self, k: int, r_prev, r_next):
        """Synaptic input to dynamic layer k >= 2 (Eq. 6-8) from rho of its neighbours.

        ``r_next`` is None for the output layer; layer 1 uses ``input_drive``
        plus the feedback term (pass ``r_prev=None``).
        """
        p = self.params
        d = 0.0
        if r_prev is not None:
            d = r_prev @ p[f"fwd{k - 1}"].T
            if f"bias{k}" in p:
                d = d + p[f"bias{k}"]
        if r_next is not None:
            d = d + r_next @ p[f"bwd{k}"].T
        return d

    def transfer(self, k: int, v_prev, v_next):
        """The linear part of :meth:`drive` (no bias): ``W_{k,k-1} v_prev + W_{k,k+1} v_next``
        into dynamic layer k; ``v_prev`` is None for k = 1, ``v_next`` for the output."""
        p, d = self.params, 0.0
        if v_prev is not None:
            d = v_prev @ p[f"fwd{k - 1}"].T
        if v_next is not None:
            d = d + v_next @ p[f"bwd{k}"].T
        return d

    def transfer_T(self, k: int, z_prev, z_next):
        """The transpose: ``W_{k-1,k}^T z_prev + W_{k+1,k}^T z_next`` into dynamic layer k."""
        p, d = self.params, 0.0
        if z_prev is not None:
            d = z_prev @ p[f"bwd{k - 1}"]
        if z_next is not None:
            d = d + z_next @ p[f"fwd{k}"]
        return d

    def hebbian(self, r, dh) -> dict[str, np.ndarray]:
        """Eq. 56 summed over the batch: for each synapse j -> i, sum rho(h_j) dh_i.

        ``r`` = [rho(x), rho(h_1), ..., rho(h_L)] at the free fixed point,
        ``dh`` = [dh_1, ..., dh_L] (nudged minus free).  With a readout outside the
        dynamics, ``dh_L`` is the readout's error -dL/dz (times the nudge strength), so
        the readout pair gets its local gradient.
        """
        out = {}
        for k in range(self.n_layers):
            out[f"fwd{k}"] = dh[k].T @ r[k]
            if 1 <= k < self.n_dynamic:
                out[f"bwd{k}"] = dh[k - 1].T @ r[k + 1]
            if f"bias{k + 1}" in self.params:
                out[f"bias{k + 1}"] = dh[k].sum(axis=0)
        return out

    def alignment_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W_{k+1,k}, W_{k,k+1}^T) per hidden pair: the two matrices :meth:`alignment` compares."""
        return [(self.params[f"fwd{k}"], self.params[f"bwd{k}"].T) for k in range(1, self.n_dynamic)]

    def alignment(self) -> list[float]:
        """Normalised tr(W_{k,k+1} W_{k+1,k}) per hidden pair (Fig. 3 right): cosine of fwd and bwd^T."""
        return [cosine(f, b) for f, b in self.alignment_pairs()]


def cosine(f: np.ndarray, b: np.ndarray) -> float:
    den = np.linalg.norm(f) * np.linalg.norm(b)
    return float(np.sum(f * b) / den) if den > 0 else 0.0


def alignment_drift(before, after) -> tuple[list[float], list[float]]:
    """How one update moved each pair's trace tr(W_{k,k+1} W_{k+1,k}) (Fig. 3 right), in units of the
    alignment cosine: the forward update's part <dF, B> / (|F| |B|) and the feedback update's part
    <F, dB> / (|F| |B|), at the weights ``before`` (lists of :meth:`Network.alignment_pairs`).

    They sum to the change of the trace up to <dF, dB>; the cosine also moves with the norms."""
    fwd, bwd = [], []
    for (f0, b0), (f1, b1) in zip(before, after):
        den = np.linalg.norm(f0) * np.linalg.norm(b0)
        fwd.append(float(np.sum((f1 - f0) * b0) / den) if den > 0 else 0.0)
        bwd.append(float(np.sum(f0 * (b1 - b0)) / den) if den > 0 else 0.0)
    return fwd, bwd


def saturate(net: Network, seed: int, gain: float = 3.0, feedback: float = 0.3,
             bias_mean: float = 0.3, bias_std: float = 0.8) -> Network:
    """Scale forward weights by `gain`, feedback by `feedback` and draw biases
    N(bias_mean, bias_std): a random untied network whose fixed points include
    units clipped at 0 and at 1 (for tests and benchmarks).  Modifies `net`."""
    rng = np.random.default_rng(seed + 1000)
    for name, w in net.params.items():
        if name.startswith("fwd"):
            w *= gain
        elif name.startswith("bwd"):
            w *= feedback
        else:
            w[:] = rng.normal(bias_mean, bias_std, w.shape)
    return net
