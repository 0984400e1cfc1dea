"""Convolutional layered network: feature-map layers, untied forward and feedback kernels.

Architecture text (``--arch``): layers joined by ``-``, input first.

* the input is ``CxHxW`` (e.g. ``1x28x28``) when convolutions follow it;
* ``c{M}k{K}[s{S}][p{P}]`` is a layer of M feature maps computed from the
  layer below by a valid K x K convolution with stride S (default 1),
  followed by P x P average pooling (default none);
* a plain integer is a dense layer (flattened, as in :class:`Network`).

Example, Table 2 with pooling: ``1x28x28-c32k5p2-c64k5p2-10`` (28 -> 24 ->
12 -> 8 -> 4, output dense from 64*4*4 units).

A convolutional pair k -> k+1 has parameters

* ``fwd{k}`` (M, C, K, K): the forward map A_k = pool o conv(., fwd{k});
* ``bwd{k}`` (M, C, K, K), k >= 1: its own feedback kernel, applied as the
  transposed map conv(., bwd{k})^T o pool^T (a transposed convolution, then
  the fixed transpose of the average pooling);
* ``bias{k+1}`` (M,): one bias per feature map.

So ``bwd{k}`` realises W_{k,k+1} with the transposed shape of W_{k+1,k},
independent of it (tied only with ``tied``).  States stay flattened
(batch, M*H*W), in channels-last order (H, W, M) (for one input channel
the same as a row-major image), so solvers, drivers and trainer use this class unchanged
through ``input_drive``, ``drive`` and ``hebbian`` (Eq. 6-8, 56).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import numpy as np

from .conv_ops import Folded, avg_pool_transpose, conv2d, conv2d_kernel_grad, conv2d_transpose, conv_out
from ..errors import ConfigError
from .network import Network, check_feedback_init, check_readout, cosine, parse_sizes

_CONV = re.compile(r"^c(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?$")
_MAP = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class Conv:
    """The connection into a feature-map layer: kernel size, stride, pooling."""

    kernel: int
    stride: int = 1
    pool: int = 1


def _is_conv_text(text) -> bool:
    return isinstance(text, str) and any(_CONV.match(t) for t in text.strip().split("-"))


def parse_arch(text):
    """Layer shapes ((C,H,W) or (n,)) and per-pair links (Conv or None for dense)."""
    tokens = [t for t in text.strip().split("-") if t]
    m = _MAP.match(tokens[0])
    if not m:
        raise ConfigError(f"architecture {text!r}: a convolutional network's input must be CxHxW, e.g. 1x28x28")
    shapes, links = [tuple(int(v) for v in m.groups())], []
    for i, tok in enumerate(tokens[1:], start=1):
        prev = shapes[-1]
        c = _CONV.match(tok)
        if c:
            maps, k, s, p = (int(v) if v else 1 for v in c.groups())
            if len(prev) != 3:
                raise ConfigError(f"architecture {text!r}: layer {i} ({tok}) follows a dense layer; convolutions need feature maps")
            if min(maps, k, s, p) < 1:
                raise ConfigError(f"architecture {text!r}: layer {i} ({tok}) needs maps, kernel, stride and pooling >= 1")
            h, w = conv_out(prev[1], k, s), conv_out(prev[2], k, s)
            if h < 1 or w < 1:
                raise ConfigError(f"architecture {text!r}: layer {i} ({tok}): a {k}x{k} kernel does not fit a {prev[1]}x{prev[2]} map")
            if h % p or w % p:
                raise ConfigError(f"architecture {text!r}: layer {i} ({tok}): {h}x{w} maps are not divisible by pooling {p}")
            shapes.append((maps, h // p, w // p))
            links.append(Conv(k, s, p))
        elif tok.isdigit() and int(tok) > 0:
            shapes.append((int(tok),))
            links.append(None)
        else:
            raise ConfigError(f"architecture {text!r}: layer {i} {tok!r} is neither a size nor c<maps>k<kernel>[s<stride>][p<pool>]")
    if len(shapes) < 2:
        raise ConfigError(f"architecture {text!r} needs at least an input and an output layer")
    return shapes, links


def format_arch(shapes, links) -> str:
    parts = ["x".join(map(str, shapes[0]))]
    for shape, link in zip(shapes[1:], links):
        if link is None:
            parts.append(str(shape[0]))
        else:
            parts.append(f"c{shape[0]}k{link.kernel}" + (f"s{link.stride}" if link.stride > 1 else "")
                         + (f"p{link.pool}" if link.pool > 1 else ""))
    return "-".join(parts)


# -- architecture text of either kind, as build.py uses it ---------------------
def normalize_arch(text) -> str:
    """Canonical architecture text (dense ``64-32-10`` or convolutional)."""
    if _is_conv_text(text):
        return format_arch(*parse_arch(text))
    return "-".join(map(str, parse_sizes(text)))


def arch_sizes(text) -> tuple[int, ...]:
    """Flattened layer sizes n_k of either kind of architecture."""
    if _is_conv_text(text):
        return tuple(int(np.prod(s)) for s in parse_arch(text)[0])
    return parse_sizes(text)


def create_network(text, seed: int = 0, bias: bool = True, tied: bool = False, linear_output: bool = False,
                   feedback_init: str = "random", readout: str = "dynamic") -> Network:
    """A :class:`ConvNetwork` for convolutional architecture text, else a dense :class:`Network`."""
    cls = ConvNetwork if _is_conv_text(text) else Network
    return cls.create(text, seed=seed, bias=bias, tied=tied, linear_output=linear_output, feedback_init=feedback_init,
                      readout=readout)


@dataclass
class ConvNetwork(Network):
    arch: str = ""

    def __post_init__(self):
        self.shapes, self.links = parse_arch(self.arch)
        self.arch = format_arch(self.shapes, self.links)
        self.sizes = tuple(int(np.prod(s)) for s in self.shapes)
        self._folded = {}  # kernels laid out for a solve (prepared)
        if self.readout != "dynamic" and self.links[-1] is not None:
            raise ConfigError(f"{self.arch}: the {self.readout} readout is a dense pair; end the architecture with "
                              "a layer size, e.g. -10")

    @classmethod
    def create(cls, arch, seed: int = 0, bias: bool = True, tied: bool = False, dtype=np.float64,
               linear_output: bool = False, feedback_init: str = "random", readout: str = "dynamic") -> "ConvNetwork":
        """Uniform init, all tensors independent: Glorot-Bengio for dense pairs; kernels
        +-sqrt(6 / fan_in), fan_in = C K^2 (Glorot's fan-out term, M K^2, would shrink the
        drive of a 5x5 kernel several-fold and leave the hard-sigmoid units nearly silent).
        Feedback tensors mirror the forward ones when tied or ``feedback_init="mirrored"``."""
        mirrored = check_feedback_init(feedback_init) or tied
        net = cls((), {}, tied, linear_output, readout, arch)
        check_readout(readout, net.n_layers)
        rng = np.random.default_rng(seed)
        for name, shape in net.expected_shapes(bias).items():
            if name.startswith("bias"):
                net.params[name] = np.zeros(shape, dtype)
                continue
            k = int(name[3:])
            if net.links[k] is None:
                fan = net.sizes[k] + net.sizes[k + 1]
            else:
                fan = shape[1] * shape[2] * shape[3]
            lim = np.sqrt(6.0 / fan)
            if name.startswith("bwd") and mirrored:
                net.params[name] = net._mirror(k, net.params[f"fwd{k}"]).copy()
            else:
                net.params[name] = rng.uniform(-lim, lim, shape).astype(dtype)
        return net

    def expected_shapes(self, bias: bool | None = None) -> dict[str, tuple[int, ...]]:
        if bias is None:
            bias = any(n.startswith("bias") for n in self.params)
        out = {}
        for k, link in enumerate(self.links):
            a, b = self.shapes[k], self.shapes[k + 1]
            if link is None:
                fwd = (self.sizes[k + 1], self.sizes[k])
                out[f"fwd{k}"] = fwd
                if 1 <= k < self.n_dynamic:
                    out[f"bwd{k}"] = fwd[::-1]
            else:
                out[f"fwd{k}"] = (b[0], a[0], link.kernel, link.kernel)
                if 1 <= k < self.n_dynamic:
                    out[f"bwd{k}"] = out[f"fwd{k}"]
            if bias:
                out[f"bias{k + 1}"] = (b[0],)
        return out

    def copy(self) -> "ConvNetwork":
        return ConvNetwork(self.sizes, {k: v.copy() for k, v in self.params.items()}, self.tied, self.linear_output,
                           self.readout, self.arch)

    def _mirror(self, k: int, w):
        """Dense pairs mirror by transposition, convolutions share the kernel tensor."""
        return w.T if self.links[k] is None else w

    # -- the connections (Eq. 6-8) ---------------------------------------------
    def _maps(self, k: int, v):
        """(N, H, W, C) view of a flattened feature-map state of layer k."""
        c, h, w = self.shapes[k]
        return v.reshape(v.shape[0], h, w, c)

    def prepared(self) -> "ConvNetwork":
        """A shallow copy holding every kernel laid out with its pooling folded in
        (:class:`~analogprop.model.conv_ops.Folded`), for a solve that keeps the parameters fixed."""
        out = copy.copy(self)
        out._folded = {name: Folded.of(w, self.links[int(name[3:])].stride, self.links[int(name[3:])].pool)
                       for name, w in self.params.items()
                       if name[:3] in ("fwd", "bwd") and self.links[int(name[3:])] is not None}
        return out

    def _kernel(self, name: str, w):
        """Kernel ``w``, or parameter ``name`` (its laid-out form when prepared)."""
        if w is not None:
            return w
        return self._folded.get(name, self.params[name])

    def _forward(self, k: int, r, w=None, bias: bool = True):
        """A_k rho(h_k) + bias_{k+1}: layer k to layer k+1, flattened (``w``: another fwd-shaped kernel)."""
        p, link = self.params, self.links[k]
        if link is None:
            d = r @ (p[f"fwd{k}"] if w is None else w).astype(r.dtype, copy=False).T
        else:
            d = conv2d(self._maps(k, r), self._kernel(f"fwd{k}", w), link.stride, link.pool)
        if bias and f"bias{k + 1}" in p:
            b = p[f"bias{k + 1}"].astype(d.dtype, copy=False)
            d = d + b
        return d.reshape(r.shape[0], -1)

    def _feedback(self, k: int, r, w=None):
        """B_k rho(h_{k+1}): layer k+1 to layer k through bwd{k} (or another bwd-shaped ``w``), flattened:
        the transposed convolution of the pooled-and-convolved map."""
        link = self.links[k]
        if link is None:
            return r @ (self.params[f"bwd{k}"] if w is None else w).astype(r.dtype, copy=False).T
        return conv2d_transpose(self._maps(k + 1, r), self._kernel(f"bwd{k}", w), self.shapes[k][1:], link.stride,
                                link.pool).reshape(r.shape[0], -1)

    def input_drive(self, rx):
        return self._forward(0, rx)

    def drive(self, k: int, r_prev, r_next):
        d = 0.0
        if r_prev is not None:
            d = self._forward(k - 1, r_prev)
        if r_next is not None:
            d = d + self._feedback(k, r_next)
        return d

    def transfer(self, k: int, v_prev, v_next):
        d = 0.0
        if v_prev is not None:
            d = self._forward(k - 1, v_prev, bias=False)
        if v_next is not None:
            d = d + self._feedback(k, v_next)
        return d

    def transfer_T(self, k: int, z_prev, z_next):
        """Adjoints: of the feedback map B_{k-1}, the forward-shaped map with kernel mirror(bwd{k-1});
        of the forward map A_k, the feedback-shaped map with mirror(fwd{k})."""
        p, d = self.params, 0.0
        if z_prev is not None:
            d = self._forward(k - 1, z_prev, self._mirror(k - 1, p[f"bwd{k - 1}"]), bias=False)
        if z_next is not None:
            d = d + self._feedback(k, z_next, self._mirror(k, p[f"fwd{k}"]))
        return d

    def hebbian(self, r, dh) -> dict[str, np.ndarray]:
        """Eq. 56 summed over the batch: dmu/dtheta(h0) . dh for every kernel, matrix and bias."""
        out = {}
        for k, link in enumerate(self.links):
            if link is None:
                out[f"fwd{k}"] = dh[k].T @ r[k]
                if 1 <= k < self.n_dynamic:
                    out[f"bwd{k}"] = dh[k - 1].T @ r[k + 1]
                bias_sum = dh[k].sum(axis=0)
            else:
                kw = {"k": link.kernel, "stride": link.stride, "pool": link.pool}
                out[f"fwd{k}"] = conv2d_kernel_grad(self._maps(k, r[k]), self._maps(k + 1, dh[k]), **kw)
                if 1 <= k < self.n_dynamic:
                    out[f"bwd{k}"] = conv2d_kernel_grad(self._maps(k, dh[k - 1]), self._maps(k + 1, r[k + 1]), **kw)
                bias_sum = self._maps(k + 1, dh[k]).sum(axis=(0, 1, 2))
            if f"bias{k + 1}" in self.params:
                out[f"bias{k + 1}"] = bias_sum
        return out

    def alignment_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each forward parameter and its feedback mirror (kernels: the kernels themselves)."""
        return [(self.params[f"fwd{k}"], self._mirror(k, self.params[f"bwd{k}"])) for k in range(1, self.n_dynamic)]

    def alignment(self) -> list[float]:
        """Cosine of each forward parameter and its feedback mirror."""
        return [cosine(f, b) for f, b in self.alignment_pairs()]

    def deepened(self, k: int) -> "Network":
        """Deepening (Network.deepened) is implemented for dense networks only."""
        raise ConfigError(f"{self.arch}: only dense networks can be deepened")

    def without_pooling(self, k: int) -> "ConvNetwork":
        """This network with the pooling of convolutional pair k removed (the pair
        after it must be dense): every pooled unit becomes its p x p block.

        ``fwd{k}`` and the per-map biases are unchanged, so the new units see the
        convolution before the mean was taken; each unit of a block gets the block's
        feedback from above (``bwd{k+1}`` copied) and a p^2-th of its forward weight
        (``fwd{k+1}``); ``bwd{k}`` is divided by p^2, the factor the removed pool^T
        applied.  On states of layer k+1 that are constant over each block every
        drive (Eq. 6-8) is the pooled network's, so a trained network starts near its
        trained function with p^2 times as many inputs to the next layer.
        """
        link = self.links[k] if 0 <= k < len(self.links) else None
        if link is None or link.pool == 1:
            raise ConfigError(f"{self.arch}: pair {k} is not a pooled convolution")
        if k + 1 >= len(self.links) or self.links[k + 1] is not None:
            raise ConfigError(f"{self.arch}: the pair after pair {k} must be dense to remove its pooling")
        p = link.pool
        shapes, links = list(self.shapes), list(self.links)
        c, h, w = shapes[k + 1]
        shapes[k + 1], links[k] = (c, h * p, w * p), Conv(link.kernel, link.stride, 1)
        n_out = self.sizes[k + 2]

        def spread(a):  # (n_out, h*w*c) channels-last -> each entry / p^2 over its block, (n_out, h*p*w*p*c)
            return avg_pool_transpose(a.reshape(n_out, h, w, c), p).reshape(n_out, -1)

        params = {n: v.copy() for n, v in self.params.items()}
        params[f"fwd{k + 1}"] = spread(params[f"fwd{k + 1}"])
        if f"bwd{k + 1}" in params:  # absent when pair k+1 is the readout
            params[f"bwd{k + 1}"] = (spread(params[f"bwd{k + 1}"].T) * (p * p)).T.copy()
        if k >= 1:
            params[f"bwd{k}"] = params[f"bwd{k}"] / (p * p)
        return ConvNetwork(tuple(int(np.prod(s)) for s in shapes), params, self.tied, self.linear_output,
                           self.readout, format_arch(shapes, links))
