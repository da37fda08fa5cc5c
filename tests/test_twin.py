"""The SYNTHETIC plasmonic twin: determinism and modes where the geometry says."""

from __future__ import annotations

import numpy as np
import pytest

from hae_bluesky.data import make_plasmonic_twin, scalarizer_from_spec
from hae_bluesky.data.twin import BULK_EV, DIPOLE_EV, EDGE_EV, twin_mode_maps


def _band(centre):
    return scalarizer_from_spec({"kind": "band_integral",
                                 "window": [centre - 0.03, centre + 0.03]})


def test_same_seed_gives_the_same_data():
    first, second = make_plasmonic_twin((32, 48), seed=3), make_plasmonic_twin((32, 48), seed=3)
    assert np.array_equal(first.spectra, second.spectra)
    assert np.array_equal(first.haadf, second.haadf)


def test_other_seed_gives_other_data():
    first, second = make_plasmonic_twin((32, 32), seed=1), make_plasmonic_twin((32, 32), seed=2)
    assert not np.array_equal(first.haadf, second.haadf)


def test_twin_is_labelled_synthetic(twin):
    assert twin.is_synthetic
    assert twin.metadata["title"].startswith("SYNTHETIC")
    assert twin.shape == (64, 64, 96)


def test_bulk_mode_lives_inside_particles(twin):
    labels = twin_mode_maps((64, 64), seed=0)["labels"]
    bulk = _band(BULK_EV)(twin.spectra, twin.energy_axis)
    assert bulk[labels > 0].mean() > 3 * bulk[labels == 0].mean()


def test_edge_mode_peaks_at_particle_boundaries(twin):
    maps = twin_mode_maps((64, 64), seed=0)
    edge = _band(EDGE_EV)(twin.spectra, twin.energy_axis)
    near_edge = maps["edge"] > 0.6
    far = maps["edge"] < 0.05
    assert edge[near_edge].mean() > 2 * edge[far].mean()


def test_dipole_mode_decays_away_from_the_cluster(twin):
    maps = twin_mode_maps((64, 64), seed=0)
    dipole = _band(DIPOLE_EV)(twin.spectra, twin.energy_axis)
    close = (maps["labels"] == 0) & (maps["dipole"] > 0.7)
    distant = maps["dipole"] < 0.2
    assert distant.any()
    assert dipole[close].mean() > dipole[distant].mean() * 1.5


def test_haadf_is_bright_on_particles(twin):
    labels = twin_mode_maps((64, 64), seed=0)["labels"]
    assert twin.haadf[labels > 0].mean() > twin.haadf[labels == 0].mean() + 100


def test_too_small_twin_is_refused():
    with pytest.raises(ValueError, match="at least 8 x 8"):
        make_plasmonic_twin((4, 64))
