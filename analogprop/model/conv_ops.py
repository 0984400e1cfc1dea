"""Batched 2-D convolution primitives in numpy (im2col + one matmul).

Feature maps are channels-last arrays (N, H, W, C), so the matmul output
is already in state layout; kernels are (O, C, K, K).  ``conv2d`` is the
forward map (valid cross-correlation with a stride), ``conv2d_transpose``
applies the transposed linear map with a kernel of the same shape, and
``conv2d_kernel_grad`` sums dy (x) x over batch and positions (the Hebbian
term of a shared kernel).  Windows come from
:func:`numpy.lib.stride_tricks.sliding_window_view`, copied once into an
im2col matrix and contracted with one BLAS matmul; no Python loop runs over
pixels, channels or samples.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output length of a valid convolution."""
    return (size - kernel) // stride + 1


def _im2col(x, k: int, stride: int):
    """(N*Ho*Wo, C*k*k) matrix of the k x k windows of x (N, H, W, C), and (N, Ho, Wo)."""
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N Ho Wo C k k
    n, ho, wo = v.shape[:3]
    return v.reshape(n * ho * wo, -1), (n, ho, wo)


def conv2d(x, w, stride: int = 1):
    """y[n,i,j,o] = sum_{c,a,b} w[o,c,a,b] x[n,s i+a,s j+b,c]."""
    cols, (n, ho, wo) = _im2col(x, w.shape[-1], stride)
    return (cols @ w.reshape(w.shape[0], -1).T).reshape(n, ho, wo, w.shape[0])


def conv2d_transpose(y, w, in_hw, stride: int = 1):
    """Transpose of :func:`conv2d` with kernel w: (N,Ho,Wo,O) -> (N,H,W,C), (H,W) = in_hw.

    One matmul gives every window's contribution (col2im); they are added
    into place with one vectorised slice-add per kernel offset (k*k of them).
    """
    n, ho, wo, o = y.shape
    _, c, k, _ = w.shape
    cols = (y.reshape(-1, o) @ w.transpose(0, 2, 3, 1).reshape(o, -1)).reshape(n, ho, wo, k, k, c)
    out = np.zeros((n,) + tuple(in_hw) + (c,), dtype=cols.dtype)
    span_h, span_w = (ho - 1) * stride + 1, (wo - 1) * stride + 1
    for a in range(k):
        for b in range(k):
            out[:, a:a + span_h:stride, b:b + span_w:stride] += cols[:, :, :, a, b]
    return out


def conv2d_kernel_grad(x, dy, k: int, stride: int = 1):
    """g[o,c,a,b] = sum_{n,i,j} dy[n,i,j,o] x[n,s i+a,s j+b,c]: d<dy, conv2d(x, w)>/dw."""
    cols, _ = _im2col(x, k, stride)
    o = dy.shape[-1]
    return (dy.reshape(-1, o).T @ cols).reshape(o, x.shape[-1], k, k)


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
