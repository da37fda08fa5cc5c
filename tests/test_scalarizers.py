"""Scalarizers: values on hand-made spectra, validation, dict round-trips."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hae_bluesky.data import scalarizer_from_spec

ENERGY = np.arange(100.0, 200.0, 2.0)  # 50 channels, 2 eV wide

SPECS = [
    {"kind": "band_integral", "window": [120.0, 130.0]},
    {"kind": "band_maximum", "window": [120.0, 130.0]},
    {"kind": "peak_position", "window": [140.0, 180.0]},
    {"kind": "edge_intensity", "window": [150.0, 190.0], "background_window": [110.0, 145.0]},
    {"kind": "ratio", "numerator": {"kind": "band_integral", "window": [120.0, 130.0]},
     "denominator": {"kind": "band_maximum", "window": [150.0, 160.0]}},
]


@pytest.mark.parametrize("spec", SPECS, ids=[spec["kind"] for spec in SPECS])
def test_spec_round_trip(spec):
    assert scalarizer_from_spec(spec).to_spec() == spec


def test_band_integral_sums_counts_times_channel_width():
    spectrum = np.zeros_like(ENERGY)
    spectrum[(ENERGY >= 120) & (ENERGY <= 130)] = 3.0  # 6 channels
    value = scalarizer_from_spec({"kind": "band_integral", "window": [120, 130]})(
        spectrum, ENERGY)
    assert value == pytest.approx(6 * 3.0 * 2.0)


def test_band_maximum_takes_the_largest_count_in_the_window():
    spectrum = np.arange(ENERGY.size, dtype=float)
    value = scalarizer_from_spec({"kind": "band_maximum", "window": [120, 130]})(
        spectrum, ENERGY)
    assert value == spectrum[ENERGY == 130][0]


def test_peak_position_is_the_centroid():
    spectrum = np.zeros_like(ENERGY)
    spectrum[ENERGY == 150] = 1.0
    spectrum[ENERGY == 160] = 3.0
    value = scalarizer_from_spec({"kind": "peak_position", "window": [140, 180]})(
        spectrum, ENERGY)
    assert value == pytest.approx((150 * 1 + 160 * 3) / 4)


def test_edge_intensity_removes_a_power_law_background_exactly():
    background = 1e7 * ENERGY**-3.0
    edge = np.where(ENERGY >= 150, 50.0, 0.0)
    spec = {"kind": "edge_intensity", "window": [150, 190], "background_window": [110, 145]}
    value = scalarizer_from_spec(spec)(background + edge, ENERGY)
    channels = np.count_nonzero((ENERGY >= 150) & (ENERGY <= 190))
    assert value == pytest.approx(50.0 * channels * 2.0, rel=1e-6)


def test_ratio_divides_the_two_scalarizers():
    spectrum = np.ones_like(ENERGY)
    spectrum[ENERGY == 150] = 4.0
    value = scalarizer_from_spec(SPECS[-1])(spectrum, ENERGY)
    assert value == pytest.approx((6 * 1.0 * 2.0) / 4.0)


def test_many_spectra_give_a_map():
    spectra = np.ones((3, 4, ENERGY.size))
    values = scalarizer_from_spec(SPECS[0])(spectra, ENERGY)
    assert values.shape == (3, 4)
    assert np.allclose(values, 12.0)


def test_nan_spectrum_gives_nan_and_a_warning(caplog):
    spectra = np.ones((2, ENERGY.size))
    spectra[1, 5] = np.nan
    with caplog.at_level(logging.WARNING):
        values = scalarizer_from_spec(SPECS[0])(spectra, ENERGY)
    assert values[0] == 12.0 and np.isnan(values[1])
    assert "NaN or inf" in caplog.text


def test_negative_counts_give_nan_and_a_warning(caplog):
    spectrum = -np.ones_like(ENERGY)
    with caplog.at_level(logging.WARNING):
        value = scalarizer_from_spec(SPECS[0])(spectrum, ENERGY)
    assert np.isnan(value)
    assert "negative" in caplog.text


def test_window_outside_the_energy_range_is_refused():
    scalarizer = scalarizer_from_spec({"kind": "band_integral", "window": [2100, 2200]})
    with pytest.raises(ValueError, match="outside the spectrometer range 100-198 eV"):
        scalarizer.validate(ENERGY)


def test_window_between_channels_is_refused():
    scalarizer = scalarizer_from_spec({"kind": "band_integral", "window": [120.5, 121.5]})
    with pytest.raises(ValueError, match="0 channel"):
        scalarizer(np.ones_like(ENERGY), ENERGY)


@pytest.mark.parametrize("window", [[130, 120], [5], "wide", [np.nan, 3]])
def test_malformed_windows_are_refused(window):
    with pytest.raises(ValueError, match="window"):
        scalarizer_from_spec({"kind": "band_integral", "window": window})


def test_background_after_the_edge_is_refused():
    with pytest.raises(ValueError, match="must end before"):
        scalarizer_from_spec({"kind": "edge_intensity", "window": [120, 140],
                              "background_window": [130, 150]})


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="band_integral"):
        scalarizer_from_spec({"kind": "plasmon_magic", "window": [1, 2]})


def test_unexpected_field_is_refused():
    with pytest.raises(ValueError, match="needs exactly"):
        scalarizer_from_spec({"kind": "band_integral", "window": [120, 130], "width": 3})


def test_spectrum_with_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="channels"):
        scalarizer_from_spec(SPECS[0])(np.ones(7), ENERGY)


@pytest.mark.parametrize("window", ["93", [True, 130]])
def test_window_of_a_string_or_booleans_is_refused_not_read_as_numbers(window):
    with pytest.raises(ValueError, match=r"window must be two energies \[low, high\] in eV"):
        scalarizer_from_spec({"kind": "band_integral", "window": window})


def test_kind_that_is_not_a_name_is_refused_with_the_known_kinds():
    with pytest.raises(ValueError, match=r"unknown scalarizer kind \['band_integral'\]; known"):
        scalarizer_from_spec({"kind": ["band_integral"], "window": [120, 130]})


def test_missing_field_is_named():
    with pytest.raises(ValueError, match=r"edge_intensity scalarizer needs exactly the "
                                         r"field\(s\) \['background_window', 'window'\]"):
        scalarizer_from_spec({"kind": "edge_intensity", "window": [120, 130]})


def test_empty_energy_axis_is_refused_with_its_shape():
    scalarizer = scalarizer_from_spec(SPECS[0])
    with pytest.raises(ValueError, match=r"at least one channel \(eV\), got shape \(0,\)"):
        scalarizer.validate(np.array([]))
