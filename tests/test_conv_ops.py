"""The block-copy convolution primitives agree with a sliding-window im2col (kept in
benchmarks/conv_ops.py, which times the two), pooled ones with that convolution then average pooling."""
import numpy as np
import pytest

from analogprop.model.conv_ops import Folded, avg_pool, avg_pool_transpose, conv2d, conv2d_kernel_grad, conv2d_transpose

from conftest import load_script

REFERENCE = load_script("benchmarks/conv_ops.py")


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("shape,kernel,stride", [((20, 12, 12, 32), (64, 32, 5, 5), 1),
                                                 ((3, 9, 8, 2), (4, 2, 3, 3), 2),
                                                 ((3, 9, 10, 2), (4, 2, 4, 4), 2),
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


@pytest.mark.parametrize("shape,kernel,stride,pool", [((20, 12, 12, 32), (64, 32, 5, 5), 1, 2),
                                                      ((3, 13, 13, 2), (4, 2, 3, 3), 2, 2),
                                                      ((2, 12, 12, 1), (5, 1, 4, 4), 1, 3)])
def test_pooling_folded_into_the_kernel_is_the_pooled_convolution(shape, kernel, stride, pool, rng):
    x = rng.uniform(size=shape)
    w = rng.normal(size=kernel)
    y = conv2d(x, w, stride, pool)
    assert relative(y, avg_pool(REFERENCE.window_conv2d(x, w, stride), pool)) <= 1e-13
    folded = Folded.of(w, stride, pool)
    assert folded.k == kernel[-1] + stride * (pool - 1) and folded.stride == stride * pool
    assert np.array_equal(conv2d(x, folded), y)
    dy = rng.normal(size=y.shape)
    ref = REFERENCE.window_conv2d_transpose(avg_pool_transpose(dy, pool), w, shape[1:3], stride)
    assert relative(conv2d_transpose(dy, w, shape[1:3], stride, pool), ref) <= 1e-13
    assert np.array_equal(conv2d_transpose(dy, folded, shape[1:3]), conv2d_transpose(dy, w, shape[1:3], stride, pool))
    g = conv2d_kernel_grad(x, dy, kernel[-1], stride, pool)
    ref = REFERENCE.window_kernel_grad(x, avg_pool_transpose(dy, pool), kernel[-1], stride)
    assert g.shape == kernel and relative(g, ref) <= 1e-13


def test_float32_stays_float32(rng):
    x = rng.uniform(size=(4, 12, 12, 3)).astype(np.float32)
    w = rng.normal(size=(5, 3, 5, 5))  # a float64 kernel (the network's parameters) on float32 states
    y = conv2d(x, w, 1, 2)
    assert y.dtype == np.float32
    assert conv2d_transpose(y, Folded.of(w.astype(np.float32), 1, 2), (12, 12)).dtype == np.float32
    assert conv2d_kernel_grad(x, y, 5, 1, 2).dtype == np.float32
