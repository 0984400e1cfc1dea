"""Batched 2-D convolution primitives in numpy (im2col + one matmul).

Feature maps are channels-last arrays (N, H, W, C), so the matmul output
is already in state layout; kernels are (O, C, K, K).  ``conv2d`` is the
forward map (valid cross-correlation with a stride), ``conv2d_transpose``
applies the transposed linear map with a kernel of the same shape, and
``conv2d_kernel_grad`` sums dy (x) x over batch and positions (the Hebbian
term of a shared kernel).  The im2col matrix is filled by K*K block copies,
one strided slice of x per kernel offset (a, b) with the channels innermost,
so its columns run (a, b, c) and the kernel is laid out once per call as a
(K*K*C, O) matrix; one BLAS matmul then contracts them.  The transposed map
is K*K matmuls, one per kernel offset, each added into its shifted slice of
the input-shaped result (col2im without the intermediate window array).  No
Python loop runs over pixels, channels or samples.
"""
from __future__ import annotations

import numpy as np


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output length of a valid convolution."""
    return (size - kernel) // stride + 1


def _offsets(k: int, ho: int, wo: int, stride: int):
    """(a, b, rows, cols): the kernel offsets and the strided slices of the input they read."""
    span_h, span_w = (ho - 1) * stride + 1, (wo - 1) * stride + 1
    for a in range(k):
        for b in range(k):
            yield a, b, slice(a, a + span_h, stride), slice(b, b + span_w, stride)


def _im2col(x, k: int, stride: int):
    """(N*Ho*Wo, k*k*C) matrix of the k x k windows of x (N, H, W, C), columns in (a, b, c) order, and (N, Ho, Wo)."""
    n, h, w, c = x.shape
    ho, wo = conv_out(h, k, stride), conv_out(w, k, stride)
    cols = np.empty((n, ho, wo, k, k, c), dtype=x.dtype)
    for a, b, rows, cs in _offsets(k, ho, wo, stride):
        cols[:, :, :, a, b, :] = x[:, rows, cs, :]
    return cols.reshape(n * ho * wo, k * k * c), (n, ho, wo)


def _laid(w):
    """Kernel (O, C, K, K) as the (K*K*C, O) matrix matching :func:`_im2col`'s columns."""
    o, c, k, _ = w.shape
    return w.transpose(2, 3, 1, 0).reshape(k * k * c, o)


def conv2d(x, w, stride: int = 1):
    """y[n,i,j,o] = sum_{c,a,b} w[o,c,a,b] x[n,s i+a,s j+b,c]."""
    cols, (n, ho, wo) = _im2col(x, w.shape[-1], stride)
    return (cols @ _laid(w)).reshape(n, ho, wo, w.shape[0])


def conv2d_transpose(y, w, in_hw, stride: int = 1):
    """Transpose of :func:`conv2d` with kernel w: (N,Ho,Wo,O) -> (N,H,W,C), (H,W) = in_hw.

    Per kernel offset (a, b), one matmul y @ w[:, :, a, b] added into the
    input positions that offset reads (k*k matmuls and slice-adds).
    """
    n, ho, wo, o = y.shape
    _, c, k, _ = w.shape
    flat, per_offset = y.reshape(-1, o), w.transpose(2, 3, 0, 1)  # (K, K, O, C)
    out = np.zeros((n,) + tuple(in_hw) + (c,), dtype=np.result_type(y, w))
    for a, b, rows, cs in _offsets(k, ho, wo, stride):
        out[:, rows, cs] += (flat @ per_offset[a, b]).reshape(n, ho, wo, c)
    return out


def conv2d_kernel_grad(x, dy, k: int, stride: int = 1):
    """g[o,c,a,b] = sum_{n,i,j} dy[n,i,j,o] x[n,s i+a,s j+b,c]: d<dy, conv2d(x, w)>/dw."""
    cols, _ = _im2col(x, k, stride)
    o = dy.shape[-1]
    return np.ascontiguousarray((dy.reshape(-1, o).T @ cols).reshape(o, k, k, x.shape[-1]).transpose(0, 3, 1, 2))


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
