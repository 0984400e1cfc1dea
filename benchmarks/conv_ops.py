"""The numpy convolution primitives against a sliding-window im2col (and PyTorch CPU when
installed), one BLAS thread each.

The MNIST second layer of ``1x28x28-c32k5p2-c64k5p2-10``: 32 -> 64 maps,
12x12 -> 8x8, 5x5 kernel, batches of 20 and 100.  Prints ``name: value``
lines (ms per call, best of several repeats) for the forward map, the
transposed map and the kernel gradient, in float64 and float32, and each
one's speed-up over the sliding-window implementation; the ``pooled`` ops
are the network's (2x2 average pooling folded into a 6x6 stride-2 kernel)
against the sliding-window convolution followed by a separate pooling.

    OMP_NUM_THREADS=1 python benchmarks/conv_ops.py
"""
import timeit

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from analogprop.model.conv_ops import avg_pool, avg_pool_transpose, conv2d, conv2d_kernel_grad, conv2d_transpose


# -- the sliding-window im2col the primitives replaced (one copy of every window, one matmul) -------------
def _windows(x, k, stride=1):
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N Ho Wo C k k
    return v.reshape(-1, v.shape[3] * k * k), v.shape[:3]


def window_conv2d(x, w, stride=1):
    cols, shape = _windows(x, w.shape[-1], stride)
    return (cols @ w.reshape(w.shape[0], -1).T).reshape(*shape, w.shape[0])


def window_conv2d_transpose(y, w, in_hw, stride=1):
    n, ho, wo, o = y.shape
    _, c, k, _ = w.shape
    cols = (y.reshape(-1, o) @ w.transpose(0, 2, 3, 1).reshape(o, -1)).reshape(n, ho, wo, k, k, c)
    out = np.zeros((n,) + tuple(in_hw) + (c,), dtype=cols.dtype)
    span_h, span_w = (ho - 1) * stride + 1, (wo - 1) * stride + 1
    for a in range(k):
        for b in range(k):
            out[:, a:a + span_h:stride, b:b + span_w:stride] += cols[:, :, :, a, b]
    return out


def window_kernel_grad(x, dy, k, stride=1):
    cols, _ = _windows(x, k, stride)
    return (dy.reshape(-1, dy.shape[-1]).T @ cols).reshape(dy.shape[-1], x.shape[-1], k, k)


def best_ms(fn, number=10, repeat=5):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e3


def main():
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for batch in (20, 100):
            for dtype in (np.float64, np.float32):
                name = f"{np.dtype(dtype).name} batch {batch}"
                x = rng.uniform(size=(batch, 12, 12, 32)).astype(dtype)
                w = rng.normal(size=(64, 32, 5, 5)).astype(dtype)
                y = conv2d(x, w)
                yp = avg_pool(y, 2)
                ops = {"forward": (lambda: conv2d(x, w), lambda: window_conv2d(x, w)),
                       "transposed": (lambda: conv2d_transpose(y, w, (12, 12)),
                                      lambda: window_conv2d_transpose(y, w, (12, 12))),
                       "kernel gradient": (lambda: conv2d_kernel_grad(x, y, 5), lambda: window_kernel_grad(x, y, 5)),
                       "pooled forward": (lambda: conv2d(x, w, 1, 2), lambda: avg_pool(window_conv2d(x, w), 2)),
                       "pooled transposed": (lambda: conv2d_transpose(yp, w, (12, 12), 1, 2),
                                             lambda: window_conv2d_transpose(avg_pool_transpose(yp, 2), w, (12, 12))),
                       "pooled kernel gradient": (lambda: conv2d_kernel_grad(x, yp, 5, 1, 2),
                                                  lambda: window_kernel_grad(x, avg_pool_transpose(yp, 2), 5))}
                for op, (new, old) in ops.items():
                    t_new, t_old = best_ms(new), best_ms(old)
                    print(f"numpy {name} {op} ms: {t_new:.2f}")
                    print(f"sliding-window {name} {op} ms: {t_old:.2f}")
                    print(f"speed-up {name} {op}: {t_old / t_new:.2f}")
                if torch is None:
                    continue
                tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
                ty = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)))
                tw = torch.from_numpy(w)
                with torch.no_grad():
                    print(f"torch {name} forward ms: {best_ms(lambda: F.conv2d(tx, tw)):.2f}")
                    print(f"torch {name} transposed ms: {best_ms(lambda: F.conv_transpose2d(ty, tw)):.2f}")
                    print(f"torch {name} kernel gradient ms: "
                          f"{best_ms(lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, ty)):.2f}")


if __name__ == "__main__":
    main()
