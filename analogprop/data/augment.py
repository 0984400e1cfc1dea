"""Data augmentation: random translations of the training images.

Not part of the paper's recipe (Appendix C trains on the plain images); an
option for when the network fits the training set but generalises worse
than it should.  Every image of a minibatch is moved by its own integer
offset in [-shift, shift] along each axis, the uncovered border filled with
zeros (the MNIST background).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError


def whole_pixels(shift) -> int:
    """``shift`` as an int, refused unless it is a whole number >= 0."""
    try:
        value = None if isinstance(shift, bool) else float(shift)
    except (TypeError, ValueError):
        value = None
    if value is None or not value.is_integer() or value < 0:
        raise ConfigError(f"shift must be a whole number of pixels >= 0, got {shift!r}")
    return int(value)


def check_fits(shift: int, image_shape) -> None:
    """Refuse a ``shift`` the dataset's images cannot take."""
    if shift and image_shape is None:
        raise ConfigError("shift needs images, but the dataset's inputs have no image shape")
    if shift and shift >= min(image_shape):
        raise ConfigError(f"shift {shift} moves {image_shape[0]}x{image_shape[1]} images out of the frame "
                          f"(at most {min(image_shape) - 1})")


def random_shifts(x: np.ndarray, image_shape: tuple[int, int], shift: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of ``x`` (flattened ``image_shape`` images) each translated by a random
    offset of at most ``shift`` pixels per axis; a new array of the same shape and dtype."""
    if shift == 0:
        return x
    h, w = image_shape
    n = len(x)
    padded = np.pad(x.reshape(n, h, w), ((0, 0), (shift, shift), (shift, shift)))
    windows = sliding_window_view(padded, (h, w), axis=(1, 2))  # (n, 2s+1, 2s+1, h, w), a view
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    return windows[np.arange(n), dy, dx].reshape(n, h * w)
