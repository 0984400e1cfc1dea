"""The numpy convolution primitives against PyTorch CPU (when installed), one BLAS thread each.

The MNIST second layer of ``1x28x28-c32k5p2-c64k5p2-10``: a batch of 20,
32 -> 64 maps, 12x12 -> 8x8, 5x5 kernel.  Prints ``name: value`` lines (ms
per call, best of several repeats) for the forward map, the transposed map
and the kernel gradient, in float64 and float32.

    python benchmarks/conv_ops.py
"""
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

from analogprop.model.conv_ops import conv2d, conv2d_kernel_grad, conv2d_transpose


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
        for dtype in (np.float64, np.float32):
            name = np.dtype(dtype).name
            x = rng.uniform(size=(20, 12, 12, 32)).astype(dtype)
            w = rng.normal(size=(64, 32, 5, 5)).astype(dtype)
            y = conv2d(x, w)
            print(f"numpy {name} forward ms: {best_ms(lambda: conv2d(x, w)):.2f}")
            print(f"numpy {name} transposed ms: {best_ms(lambda: conv2d_transpose(y, w, (12, 12))):.2f}")
            print(f"numpy {name} kernel gradient ms: {best_ms(lambda: conv2d_kernel_grad(x, y, 5)):.2f}")
            if torch is None:
                continue
            tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            ty = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)))
            tw = torch.from_numpy(w)
            assert np.allclose(F.conv2d(tx, tw).numpy(), y.transpose(0, 3, 1, 2), rtol=1e-3, atol=1e-3)
            with torch.no_grad():
                print(f"torch {name} forward ms: {best_ms(lambda: F.conv2d(tx, tw)):.2f}")
                print(f"torch {name} transposed ms: {best_ms(lambda: F.conv_transpose2d(ty, tw)):.2f}")
                print(f"torch {name} kernel gradient ms: "
                      f"{best_ms(lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, ty)):.2f}")


if __name__ == "__main__":
    main()
