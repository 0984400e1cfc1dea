"""Random translations of training images (analogprop.data.augment) and their use in the trainer."""
import numpy as np
import pytest

from analogprop.data.augment import check_fits, random_shifts, whole_pixels
from analogprop.data import load_digits
from analogprop.errors import ConfigError
from analogprop.runs.training import train
from test_trainer import make


def translate(img, dy, dx):
    """``img`` moved down by dy and right by dx, zeros filling the uncovered border."""
    h, w = img.shape
    out = np.zeros_like(img)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def offsets_of(x, shifted, shape, s):
    """The (dy, dx) of every row of ``shifted`` as a translation of the same row of ``x``; fails if none fits."""
    found = []
    for a, b in zip(x, shifted):
        a, b = a.reshape(shape), b.reshape(shape)
        hits = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1) if np.array_equal(translate(a, dy, dx), b)]
        assert hits, "a shifted image is no translation of its original"
        found.append(hits[0])
    return found


def test_every_image_is_translated_by_at_most_shift_pixels_and_all_offsets_occur():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (400, 5 * 6))  # no zero pixels: each offset gives a distinct image
    out = random_shifts(x, (5, 6), 2, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = offsets_of(x, out, (5, 6), 2)
    assert set(offsets) == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert random_shifts(x, (5, 6), 0, np.random.default_rng(1)) is x


def test_shifts_are_a_function_of_the_generator():
    x = np.random.default_rng(0).uniform(size=(20, 64))
    a = random_shifts(x, (8, 8), 1, np.random.default_rng([0, 3, 7]))
    b = random_shifts(x, (8, 8), 1, np.random.default_rng([0, 3, 7]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_shifts(x, (8, 8), 1, np.random.default_rng([0, 3, 8])))


@pytest.mark.parametrize("bad", [-1, 1.5, True, float("nan"), float("inf"), "two", None])
def test_bad_shift_refused(bad):
    with pytest.raises(ConfigError, match="shift must be a whole number"):
        whole_pixels(bad)


def test_shift_that_does_not_fit_the_images_refused():
    with pytest.raises(ConfigError, match=r"shift 8 moves 8x8 images out of the frame \(at most 7\)"):
        check_fits(8, (8, 8))
    with pytest.raises(ConfigError, match="no image shape"):
        check_fits(1, None)
    check_fits(0, None)


def test_trainer_feeds_shifted_images_and_still_learns():
    digits = load_digits()
    tr = make(epochs=2, shift=1)
    seen = []
    step = tr.step

    def recording(x, labels, sign=1.0):
        seen.append((x, labels))
        return step(x, labels, sign)

    tr.step = recording
    before = tr.evaluate(digits.x_test, digits.y_test)["error"]
    records = []
    tr.fit(digits, on_epoch=records.append)
    order, _ = tr.epoch_plan(0, len(digits.y_train))
    x0, labels0 = seen[0]
    idx = order[:len(labels0)]
    np.testing.assert_array_equal(labels0, digits.y_train[idx])
    moved = offsets_of(digits.x_train[idx], x0, (8, 8), 1)
    assert any(o != (0, 0) for o in moved)
    assert records[-1]["test_error"] < before - 0.3


def test_train_refuses_a_shift_larger_than_the_digits(tmp_path):
    with pytest.raises(ConfigError, match="shift 9 moves 8x8 images"):
        train({"arch": "64-16-10", "epochs": 1, "shift": 9}, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
