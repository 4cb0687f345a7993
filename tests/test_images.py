import numpy as np
import pytest

from diffusegae.images import load_image, make_grid, save_png, to_model, to_uint8


def test_round_trip_is_exact_for_every_value():
    img = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    x = to_model(img)
    assert x.dtype == np.float32 and x.shape == (1, 3, 16, 16)
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(to_uint8(x), img)


def test_single_image_gets_a_batch_axis_and_out_of_range_is_clipped():
    assert to_model(np.zeros((4, 5, 3), np.uint8)).shape == (1, 3, 4, 5)
    out = to_uint8(np.full((1, 3, 2, 2), 7.0, np.float32))
    assert out.dtype == np.uint8 and (out == 255).all()


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4, 4), np.uint8)])
def test_bad_images_are_refused(bad):
    with pytest.raises((TypeError, ValueError)):
        to_model(bad)


def test_png_io_and_grid(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8) for _ in range(2)]
    grid = make_grid(rows, row_labels=["a", "bb"], col_labels=["x", "y", "z"], pad=2)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    path = save_png(grid, tmp_path / "sub" / "g.png")
    np.testing.assert_array_equal(load_image(path), grid)
    assert load_image(path, size=16).shape == (16, 16, 3)
