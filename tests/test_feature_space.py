"""Feature space: rVAE training on small patch sets and aggregation points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hae_bluesky.analysis.feature_space import (
    RotationInvariantVAE,
    aggregation_points,
    latent_density,
    train_rvae,
    trajectory_latents,
)
from hae_bluesky.data import extract_patches


@pytest.fixture(scope="module")
def small_patches(twin):
    """400 patches of 5 x 5 pixels from a 24 x 24 corner of the twin's HAADF image."""
    return extract_patches(twin.haadf[:24, :24], 5, twin.pixel_size_nm)


@pytest.fixture(scope="module")
def feature_space(small_patches):
    return train_rvae(small_patches, epochs=3, batch_size=100, hidden=32, seed=1)


def test_rvae_gives_one_finite_latent_position_per_patch(feature_space, small_patches):
    count = len(small_patches)

    assert count == 400
    assert feature_space.latents.shape == (count, 2)
    assert feature_space.angles.shape == (count,)
    assert feature_space.translations is None
    assert np.all(np.isfinite(feature_space.latents))
    assert np.all(np.isfinite(feature_space.angles))


def test_rvae_records_a_finite_loss_per_epoch(feature_space):
    assert feature_space.loss_history.shape == (3,)
    assert np.all(np.isfinite(feature_space.loss_history))
    assert feature_space.loss_history[-1] < feature_space.loss_history[0]
    assert feature_space.training_seconds > 0


def test_rvae_encodes_new_patches_like_the_training_ones(feature_space, small_patches):
    again = feature_space.encode(small_patches.values[:7])

    np.testing.assert_allclose(again, feature_space.latents[:7], rtol=1e-5, atol=1e-6)


def test_rvae_decodes_latents_to_patches_in_the_unit_range(feature_space):
    rendered = feature_space.decode(feature_space.latents[:4])

    assert rendered.shape == (4, 5, 5)
    assert rendered.min() >= 0.0 and rendered.max() <= 1.0


def test_rvae_with_translation_reports_a_shift_per_patch(small_patches):
    space = train_rvae(small_patches.values[:100], latent_dim=3, epochs=1,
                       hidden=16, translation=True)

    assert space.latents.shape == (100, 3)
    assert space.translations.shape == (100, 2)
    assert np.all(np.isfinite(space.translations))


def test_rvae_training_is_reproducible_and_leaves_the_global_seed_alone(small_patches):
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)

    first = train_rvae(small_patches.values[:50], epochs=1, hidden=8, seed=5)
    draw_after = torch.rand(1)
    second = train_rvae(small_patches.values[:50], epochs=1, hidden=8, seed=5)

    np.testing.assert_array_equal(first.latents, second.latents)
    assert draw_after.item() == expected_draw.item()


def test_rvae_refuses_patches_with_nan():
    patches = np.zeros((4, 3, 3))
    patches[1, 1, 1] = np.nan

    with pytest.raises(ValueError, match="non-finite"):
        train_rvae(patches, epochs=1)


def test_decoder_turns_a_patch_when_the_angle_turns():
    torch.manual_seed(0)
    model = RotationInvariantVAE(patch_size=5, latent_dim=2, hidden=16)
    z = torch.zeros(1, 2)

    with torch.no_grad():
        upright = model.decode(z, torch.zeros(1))[0].numpy()
        turned = model.decode(z, torch.full((1,), np.pi / 2))[0].numpy()

    # Rendering on coordinates turned by +90 degrees (x = column, y = row)
    # equals the upright patch turned by np.rot90 on the pixel grid.
    np.testing.assert_allclose(turned, np.rot90(upright, k=1), atol=1e-5)


def test_trajectory_latents_has_one_row_per_position(feature_space, small_patches):
    visited = [small_patches.index_of(row, column) for row, column in
               [(2, 2), (10, 5), (21, 21), (2, 2)]]

    trajectory = trajectory_latents(feature_space.latents, visited)

    assert trajectory.shape == (4, 2)
    np.testing.assert_array_equal(trajectory[0], feature_space.latents[0])
    np.testing.assert_array_equal(trajectory[3], trajectory[0])


def test_trajectory_latents_refuses_an_unknown_patch(feature_space):
    with pytest.raises(ValueError, match="0-399"):
        trajectory_latents(feature_space.latents, [0, 400])


def _two_clusters():
    rng = np.random.default_rng(0)
    left = rng.normal((-2.0, 0.0), 0.2, size=(40, 2))
    right = rng.normal((2.0, 1.0), 0.2, size=(60, 2))
    return np.vstack([left, right])


def test_aggregation_points_find_both_cluster_centres():
    visited = _two_clusters()

    points = aggregation_points(visited, grid_size=96)

    assert len(points) == 2
    denser, sparser = points
    np.testing.assert_allclose(denser.location, (2.0, 1.0), atol=0.3)
    np.testing.assert_allclose(sparser.location, (-2.0, 0.0), atol=0.3)
    assert denser.relative_density == 1.0
    assert 0.4 < sparser.relative_density < 1.0


def test_aggregation_points_assign_each_visit_to_its_cluster():
    visited = _two_clusters()

    denser, sparser = aggregation_points(visited, grid_size=96)

    assert denser.visits == 60 and sparser.visits == 40
    assert denser.visit_steps == tuple(range(40, 100))
    assert sparser.visit_steps == tuple(range(40))


def test_minimum_relative_density_drops_the_weaker_cluster():
    points = aggregation_points(_two_clusters(), min_relative_density=0.99, grid_size=96)

    assert len(points) == 1
    np.testing.assert_allclose(points[0].location, (2.0, 1.0), atol=0.3)


def test_shallow_maxima_within_one_cluster_are_folded_into_its_peak():
    visited = _two_clusters()

    unfolded = aggregation_points(visited, min_prominence=0.0, grid_size=96)
    folded = aggregation_points(visited, grid_size=96)

    # Scott's kernel is narrow across the line of the clusters, so the
    # denser cluster alone shows more than one local maximum.
    assert len(unfolded) > len(folded) == 2
    assert sum(point.visits for point in folded) == 100


def test_latent_density_of_repeated_visits_uses_the_fallback_kernel():
    visited = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])

    density = latent_density(visited, grid_size=33, min_bandwidth=0.1)
    points = aggregation_points(visited, density=density)

    np.testing.assert_allclose(density.kernel_covariance, np.eye(2) * 0.01)
    assert len(points) == 1
    np.testing.assert_allclose(points[0].location, (1.0, 1.0), atol=0.02)
    assert points[0].visits == 3


def test_latent_density_refuses_more_than_two_dimensions():
    with pytest.raises(ValueError, match="two latent dimensions"):
        latent_density(np.zeros((5, 3)))
