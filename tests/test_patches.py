"""Patch extraction: window geometry, index maps, positions and errors."""

from __future__ import annotations

import numpy as np
import pytest

from hae_bluesky.data import extract_patches


@pytest.fixture
def ramp():
    """A 9 x 7 image whose pixel value encodes its (row, column)."""
    rows, columns = np.mgrid[0:9, 0:7]
    return (10 * rows + columns).astype(float)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
def test_patch_count_and_window_content(ramp, size):
    patches = extract_patches(ramp, size, normalisation="none")

    assert len(patches) == (9 - size + 1) * (7 - size + 1)
    offset = size // 2
    for index in (0, len(patches) // 2, len(patches) - 1):
        row, column = patches.rows[index], patches.columns[index]
        window = ramp[row - offset:row - offset + size, column - offset:column - offset + size]
        assert np.array_equal(patches.values[index], window)


def test_odd_patch_is_centred_on_its_pixel(ramp):
    patches = extract_patches(ramp, 3, normalisation="none")
    index = patches.index_of(4, 3)
    assert patches.values[index][1, 1] == ramp[4, 3]


def test_even_patch_centre_is_lower_right_of_the_middle_four(ramp):
    patches = extract_patches(ramp, 4, normalisation="none")
    index = patches.index_of(4, 3)
    assert patches.values[index][2, 2] == ramp[4, 3]
    assert patches.values[index][0, 0] == ramp[2, 1]


def test_index_and_positions_round_trip(ramp):
    patches = extract_patches(ramp, 5, pixel_size_nm=0.5)
    for index in range(len(patches)):
        x_nm, y_nm = patches.positions_nm[index]
        assert patches.nearest_index(x_nm, y_nm) == index
        assert patches.index_of(patches.rows[index], patches.columns[index]) == index
    assert patches.positions_nm[0].tolist() == [1.0, 1.0]


def test_position_off_the_field_of_view_is_refused(ramp):
    patches = extract_patches(ramp, 3, pixel_size_nm=1.0)
    with pytest.raises(ValueError, match="outside the field of view"):
        patches.nearest_index(20.0, 1.0)


def test_centre_too_close_to_edge_is_refused(ramp):
    patches = extract_patches(ramp, 5)
    with pytest.raises(ValueError, match="not the centre of a whole 5 x 5 patch"):
        patches.index_of(0, 0)


def test_image_normalisation_scales_to_unit_range(ramp):
    values = extract_patches(ramp, 3).values
    assert values.min() == 0.0 and values.max() == 1.0
    assert values.dtype == np.float32


def test_patch_normalisation_standardises_each_patch(ramp):
    values = extract_patches(ramp, 3, normalisation="patch").values
    assert np.allclose(values.mean(axis=(1, 2)), 0, atol=1e-5)
    assert np.allclose(values.std(axis=(1, 2)), 1, atol=1e-4)


def test_flat_view_shares_memory():
    patches = extract_patches(np.random.default_rng(0).random((20, 30)), 5)
    assert patches.flat().shape == (len(patches), 25)
    assert np.shares_memory(patches.flat(), patches.values)


@pytest.mark.parametrize("size", [0, -3, 2.5, 10])
def test_bad_patch_sizes_are_refused(ramp, size):
    with pytest.raises(ValueError, match="patch size"):
        extract_patches(ramp, size)


def test_nan_image_is_refused(ramp):
    ramp[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract_patches(ramp, 3)
