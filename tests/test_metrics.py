"""Monitoring metrics on hand-made trajectories whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from hae_bluesky.analysis.metrics import (
    best_so_far,
    discovery,
    distance_travelled,
    learning_curve,
    next_step_uncertainty,
    top_fraction_found,
    uncertainty_slope,
)


def test_distance_of_a_3_4_5_path_in_pixels_and_nm():
    # (0, 0) -> (3, 4) is 5 px, (3, 4) -> (3, 0) is 4 px.
    distance = distance_travelled([0, 3, 3], [0, 4, 0], pixel_size_nm=0.25)

    np.testing.assert_allclose(distance.step_pixels, [0.0, 5.0, 4.0])
    np.testing.assert_allclose(distance.cumulative_pixels, [0.0, 5.0, 9.0])
    np.testing.assert_allclose(distance.cumulative_nm, [0.0, 1.25, 2.25])
    assert distance.total_pixels == 9.0
    assert distance.total_nm == pytest.approx(2.25)


def test_distance_of_a_single_position_is_zero():
    distance = distance_travelled([7], [2], pixel_size_nm=2.0)

    assert distance.step_pixels.tolist() == [0.0]
    assert distance.total_nm == 0.0


def test_distance_of_an_empty_trajectory_is_zero():
    assert distance_travelled([], [], pixel_size_nm=1.0).total_pixels == 0.0


def test_distance_refuses_a_non_positive_pixel_size():
    with pytest.raises(ValueError, match="pixel size must be positive"):
        distance_travelled([0, 1], [0, 1], pixel_size_nm=0.0)


def test_learning_curve_mean_and_dispersion_per_step():
    uncertainty = np.array([[1.0, 3.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])

    curve = learning_curve(uncertainty, steps=[4, 5])

    assert curve.steps.tolist() == [4, 5]
    np.testing.assert_allclose(curve.mean, [2.0, 1.0])
    np.testing.assert_allclose(curve.dispersion, [np.sqrt(0.5), 0.0])
    assert curve.knowledge_gain == pytest.approx(1.0)
    assert len(curve) == 2


def test_learning_curve_leaves_out_masked_patches():
    curve = learning_curve([[2.0, np.nan, 4.0]])

    np.testing.assert_allclose(curve.mean, [3.0])
    np.testing.assert_allclose(curve.dispersion, [1.0])


def test_learning_curve_refuses_maps_of_different_size():
    with pytest.raises(ValueError, match="same patches"):
        learning_curve([[1.0, 2.0], [1.0]])


def test_learning_curve_refuses_a_map_without_finite_values():
    with pytest.raises(ValueError, match="step index 1"):
        learning_curve([[1.0, 2.0], [np.nan, np.nan]])


def test_next_step_uncertainty_picks_the_chosen_patch_of_each_step():
    uncertainty = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.4, 0.6, 0.7]])

    values = next_step_uncertainty(uncertainty, chosen=[0, 1, 2])

    np.testing.assert_allclose(values, [0.9, 0.8, 0.7])


def test_next_step_uncertainty_refuses_an_index_outside_the_map():
    with pytest.raises(ValueError, match="0-2"):
        next_step_uncertainty([[1.0, 2.0, 3.0]], chosen=[3])


def test_uncertainty_slope_of_a_straight_line():
    assert uncertainty_slope([5.0, 4.5, 4.0, 3.5]) == pytest.approx(-0.5)
    assert uncertainty_slope([1.0, np.nan, 3.0]) == pytest.approx(1.0)
    assert np.isnan(uncertainty_slope([1.0]))


def test_best_so_far_when_maximising_and_minimising():
    values = [np.nan, 2.0, 1.0, 3.0, 0.5]

    np.testing.assert_array_equal(best_so_far(values), [np.nan, 2.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(
        best_so_far(values, maximize=False), [np.nan, 2.0, 1.0, 1.0, 0.5]
    )


def test_top_fraction_found_counts_each_top_position_once():
    # 10 candidates (NaN at the edge column); the top 20 % are the 2 largest:
    # (0, 1) with 9 and (1, 2) with 8.
    true_map = np.array(
        [[np.nan, 9.0, 1.0, 2.0, 3.0, np.nan],
         [np.nan, 4.0, 8.0, 5.0, 6.0, np.nan]]
    )
    rows = [1, 0, 0, 1, 1]
    columns = [1, 1, 1, 2, 3]

    fraction = top_fraction_found(rows, columns, true_map, top_percent=20.0)

    np.testing.assert_allclose(fraction, [0.0, 0.5, 0.5, 1.0, 1.0])


def test_top_fraction_found_refuses_positions_outside_the_map():
    with pytest.raises(ValueError, match="outside"):
        top_fraction_found([0, 5], [0, 0], np.ones((2, 2)))


def test_discovery_when_minimising_looks_for_the_smallest_true_values():
    true_map = np.array([[5.0, 1.0], [3.0, 4.0]])

    result = discovery([3.0, 1.0], rows=[1, 0], columns=[0, 1], true_map=true_map,
                       top_percent=25.0, maximize=False)

    assert result.top_count == 1
    np.testing.assert_allclose(result.fraction_found, [0.0, 1.0])
    np.testing.assert_allclose(result.best_so_far, [3.0, 1.0])


def test_discovery_without_a_true_map_gives_only_the_best_value():
    result = discovery([1.0, 4.0, 2.0])

    assert result.fraction_found is None
    assert result.top_count == 0
    np.testing.assert_allclose(result.best_so_far, [1.0, 4.0, 4.0])
