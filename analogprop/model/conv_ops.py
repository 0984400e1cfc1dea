"""Batched 2-D convolution primitives in numpy (im2col + one matmul), with the
average pooling folded into the kernel.

Feature maps are channels-last arrays (N, H, W, C), so the matmul output
is already in state layout; kernels are (O, C, K, K).  ``conv2d`` is the
forward map (valid cross-correlation with a stride, then p x p average
pooling), ``conv2d_transpose`` applies the transposed linear map with a
kernel of the same shape, and ``conv2d_kernel_grad`` sums dy (x) x over
batch and positions (the Hebbian term of a shared kernel).

Pooling is linear, so ``avg_pool(conv(x, w, s), p)`` is the convolution of x
with stride s p and the (K + s(p-1))-wide kernel ``w`` averaged over its p x p
shifts by s (:func:`fold`): for 5x5 kernels and 2x2 pooling a quarter of the
output positions with a 6x6 kernel, 2.8 times fewer multiply-adds, and no
pooled intermediate.  A kernel is laid out once as the (K*K*C, O) matrix of
:class:`Folded`; the im2col matrix is one copy of a strided window view of x
with the channels innermost, so its columns run (a, b, c), and one BLAS
matmul contracts the two.  The
transposed map is one matmul to the windows and K*K slice-adds of them into
the input-shaped result (col2im).  No Python loop runs over pixels, channels
or samples.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output length of a valid convolution."""
    return (size - kernel) // stride + 1


@dataclass(frozen=True)
class Folded:
    """A kernel with its pooling folded in: the (k*k*C, O) matrix of the k x k kernel of stride ``stride``."""

    matrix: np.ndarray
    k: int
    stride: int

    @classmethod
    def of(cls, w, stride: int = 1, pool: int = 1) -> "Folded":
        """``avg_pool(conv(., w, stride), pool)`` as one convolution (module docstring)."""
        o, c, k, _ = w.shape
        laid = w.transpose(2, 3, 1, 0)  # (K, K, C, O): shifts move whole (C, O) blocks
        if pool == 1:
            return cls(np.ascontiguousarray(laid).reshape(k * k * c, o), k, stride)
        ke = k + stride * (pool - 1)
        out = np.zeros((ke, ke, c, o), dtype=w.dtype)
        part = laid * np.asarray(1.0 / (pool * pool), dtype=w.dtype)
        for i in range(pool):
            for j in range(pool):
                out[stride * i:stride * i + k, stride * j:stride * j + k] += part
        return cls(out.reshape(ke * ke * c, o), ke, stride * pool)


def _fold(w, stride: int, pool: int) -> Folded:
    return w if isinstance(w, Folded) else Folded.of(w, stride, pool)


def _im2col(x, k: int, stride: int):
    """(N*Ho*Wo, k*k*C) matrix of the k x k windows of x (N, H, W, C), columns in (a, b, c) order, and (N, Ho, Wo):
    one copy of a strided window view of x."""
    n, h, w, c = x.shape
    ho, wo = conv_out(h, k, stride), conv_out(w, k, stride)
    windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, :(ho - 1) * stride + 1:stride, :(wo - 1) * stride + 1:stride]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, k * k * c), (n, ho, wo)


def conv2d(x, w, stride: int = 1, pool: int = 1):
    """y[n,i,j,o] = sum_{c,a,b} w[o,c,a,b] x[n,s i+a,s j+b,c], then the mean over p x p blocks of (i, j).

    ``w``: an (O, C, K, K) kernel, or a :class:`Folded` one (then ``stride`` and ``pool`` are its own)."""
    f = _fold(w, stride, pool)
    cols, (n, ho, wo) = _im2col(x, f.k, f.stride)
    return (cols @ f.matrix.astype(x.dtype, copy=False)).reshape(n, ho, wo, -1)


def conv2d_transpose(y, w, in_hw, stride: int = 1, pool: int = 1):
    """Transpose of :func:`conv2d` with kernel w: (N,Ho,Wo,O) -> (N,H,W,C), (H,W) = in_hw.

    One matmul gives every output position's k x k x C window; each kernel
    offset's slice of them is added into the input positions it reads (for a
    stride s dividing k, in (k/s)^2 adds of whole s x s blocks).
    """
    f = _fold(w, stride, pool)
    n, ho, wo, o = y.shape
    k, s, c = f.k, f.stride, f.matrix.shape[0] // (f.k * f.k)
    m = f.matrix.astype(np.result_type(y, f.matrix), copy=False)
    cols = y.reshape(-1, o) @ m.T
    out = np.zeros((n,) + tuple(in_hw) + (c,), dtype=cols.dtype)
    if s > 1 and k % s == 0:  # offsets a = s a' + r: (k/s)^2 adds of s x s blocks instead of k^2 strided ones
        q = k // s
        hp, wp = s * (ho - 1 + q), s * (wo - 1 + q)  # the rows and columns the windows reach
        blocks = np.zeros((n, hp // s, s, wp // s, s, c), dtype=cols.dtype)
        parts = cols.reshape(n, ho, wo, q, s, q, s, c)
        for a in range(q):
            for b in range(q):
                blocks[:, a:a + ho, :, b:b + wo] += parts[:, :, :, a, :, b].transpose(0, 1, 3, 2, 4, 5)
        out[:, :hp, :wp] = blocks.reshape(n, hp, wp, c)
        return out
    cols = cols.reshape(n, ho, wo, k, k, c)
    span_h, span_w = (ho - 1) * s + 1, (wo - 1) * s + 1
    for a in range(k):
        for b in range(k):
            out[:, a:a + span_h:s, b:b + span_w:s] += cols[:, :, :, a, b]
    return out


def conv2d_kernel_grad(x, dy, k: int, stride: int = 1, pool: int = 1):
    """g[o,c,a,b] = d<dy, conv2d(x, w, stride, pool)>/dw[o,c,a,b] for a k x k kernel: the windows of x
    summed against dy over batch and positions, then (pooled) the folded kernel's gradient summed
    over the p x p shifts it was averaged over."""
    ke, se = k + stride * (pool - 1), stride * pool
    cols, _ = _im2col(x, ke, se)
    o, c = dy.shape[-1], x.shape[-1]
    g = (dy.reshape(-1, o).T @ cols).reshape(o, ke, ke, c)
    if pool > 1:
        parts = [g[:, stride * i:stride * i + k, stride * j:stride * j + k] for i in range(pool) for j in range(pool)]
        g = np.sum(parts, axis=0) * np.asarray(1.0 / (pool * pool), dtype=g.dtype)
    return np.ascontiguousarray(g.transpose(0, 3, 1, 2))


def avg_pool(x, p: int):
    """Mean over non-overlapping p x p blocks of (N, H, W, C) (H, W divisible by p)."""
    if p == 1:
        return x
    n, h, w, c = x.shape
    return x.reshape(n, h // p, p, w // p, p, c).mean(axis=(2, 4))


def avg_pool_transpose(y, p: int):
    """Transpose of :func:`avg_pool`: every block receives y / p^2."""
    if p == 1:
        return y
    return np.repeat(np.repeat(y, p, axis=1), p, axis=2) / (p * p)
