"""The block-copy convolution primitives agree with the sliding-window im2col they replaced
(kept in benchmarks/conv_ops.py, which times the two)."""
import numpy as np
import pytest

from analogprop.model.conv_ops import conv2d, conv2d_kernel_grad, conv2d_transpose

from conftest import load_script

REFERENCE = load_script("benchmarks/conv_ops.py")


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("shape,kernel,stride", [((20, 12, 12, 32), (64, 32, 5, 5), 1),
                                                 ((3, 9, 8, 2), (4, 2, 3, 3), 2),
                                                 ((2, 28, 28, 1), (5, 1, 5, 5), 1)])
def test_primitives_agree_with_the_sliding_window_im2col(shape, kernel, stride, dtype, tol, rng):
    x = rng.uniform(size=shape).astype(dtype)
    w = rng.normal(size=kernel).astype(dtype)
    y = conv2d(x, w, stride)
    ref = REFERENCE.window_conv2d(x, w, stride)
    assert y.dtype == ref.dtype == dtype and y.shape == ref.shape
    assert relative(y, ref) <= tol
    dy = rng.normal(size=y.shape).astype(dtype)
    t = conv2d_transpose(dy, w, shape[1:3], stride)
    assert t.dtype == dtype and relative(t, REFERENCE.window_conv2d_transpose(dy, w, shape[1:3], stride)) <= tol
    g = conv2d_kernel_grad(x, dy, kernel[-1], stride)
    assert g.shape == kernel and g.flags.c_contiguous
    assert relative(g, REFERENCE.window_kernel_grad(x, dy, kernel[-1], stride)) <= tol
