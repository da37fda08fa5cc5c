"""Specification of the STEM-EELS ophyd devices and their simulated backend."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from ophyd.utils import LimitError, ReadOnlyError

from hae_bluesky.data import SpectrumImage
from hae_bluesky.devices import OutsideFieldError, ScanGrid, SimulatedMicroscope

PIXEL_NM = 0.5


@pytest.fixture
def recording() -> SpectrumImage:
    """A small random spectrum image: 6 x 5 pixels, 20 channels, int16 counts."""
    rng = np.random.default_rng(1)
    return SpectrumImage(
        haadf=rng.integers(100, 1000, (6, 5)).astype(np.uint16),
        spectra=rng.integers(0, 500, (6, 5, 20)).astype(np.int16),
        energy_axis=np.linspace(700.0, 852.0, 20),
        pixel_size_nm=PIXEL_NM,
    )


@pytest.fixture
def run_engine() -> RunEngine:
    return RunEngine({}, call_returns_result=False)


def collect(run_engine: RunEngine, plan) -> list[tuple[str, dict]]:
    documents: list[tuple[str, dict]] = []
    run_engine(plan, lambda name, doc: documents.append((name, doc)))
    return documents


def events(documents, key: str) -> list:
    return [doc["data"][key] for name, doc in documents if name == "event" and key in doc["data"]]


def test_scan_grid_maps_positions_to_pixel_centres():
    grid = ScanGrid((6, 5), PIXEL_NM)

    assert grid.position_of(row=2, column=3) == (1.5, 1.0)
    assert grid.nearest_pixel(1.74, 1.2) == (2, 3)
    assert grid.nearest_pixel(1.75, 1.25) == (3, 4)
    assert grid.nearest_pixel(-7.0, 99.0) == (5, 0)
    assert grid.x_limits == (0.0, 2.0)
    assert grid.y_limits == (0.0, 2.5)


def test_limits_of_the_axes_are_the_field_of_view(recording):
    microscope = SimulatedMicroscope(recording)

    assert microscope.scan.x.limits == (0.0, 2.0)
    assert microscope.scan.y.limits == (0.0, 2.5)


def test_move_outside_field_raises_before_moving(recording, run_engine):
    microscope = SimulatedMicroscope(recording)
    run_engine(bps.mv(microscope.scan, (1.0, 1.5)))

    with pytest.raises(OutsideFieldError, match=r"x = 2\.6 nm .* 0-2 nm"):
        microscope.scan.x.set(2.6)
    with pytest.raises(LimitError):
        run_engine(bps.mv(microscope.scan.y, -0.1))
    with pytest.raises(OutsideFieldError, match=r"y = 3 nm"):
        microscope.scan.set((0.5, 3.0))

    assert microscope.scan.position == (1.0, 1.5)
    assert microscope.backend.beam_position == (1.0, 1.5)
    assert microscope.scan.x.setpoint.get() == 1.0


def test_outside_field_error_is_a_value_error():
    assert issubclass(OutsideFieldError, ValueError)
    assert issubclass(OutsideFieldError, LimitError)


def test_move_one_axis_keeps_the_other(recording, run_engine):
    microscope = SimulatedMicroscope(recording)

    run_engine(bps.mv(microscope.scan, (1.5, 2.0)))
    run_engine(bps.mv(microscope.scan.x, 0.5))

    assert microscope.scan.position == (0.5, 2.0)
    assert microscope.backend.beam_pixel() == (4, 1)


def test_spectra_equal_the_recording_when_options_are_off(recording, run_engine):
    microscope = SimulatedMicroscope(recording)
    pixels = [(0, 0), (2, 3), (5, 4)]

    def plan():
        for row, column in pixels:
            yield from bps.mv(microscope.scan, microscope.position_of(row, column))
            yield from bps.trigger_and_read([microscope.scan, microscope.eels])

    documents = collect(run_engine, _in_run(plan()))
    spectra = events(documents, "eels_spectrum")

    assert len(spectra) == len(pixels)
    for spectrum, (row, column) in zip(spectra, pixels, strict=True):
        np.testing.assert_array_equal(spectrum, recording.spectra[row, column])
    assert events(documents, "stem_scan_x") == [0.0, 1.5, 2.0]
    assert events(documents, "stem_scan_y") == [0.0, 1.0, 2.5]


def _in_run(plan):
    yield from bps.open_run()
    yield from plan
    yield from bps.close_run()


def test_haadf_image_equals_the_recording_when_options_are_off(recording, run_engine):
    microscope = SimulatedMicroscope(recording)

    documents = collect(run_engine, bp.count([microscope.haadf]))
    (image,) = events(documents, "haadf_image")

    np.testing.assert_array_equal(image, recording.haadf)


def test_describe_gives_shape_and_numpy_dtype(recording):
    microscope = SimulatedMicroscope(recording)

    spectrum_key = microscope.eels.describe()["eels_spectrum"]
    image_key = microscope.haadf.describe()["haadf_image"]
    energy_key = microscope.eels.describe_configuration()["eels_energy_axis"]

    assert spectrum_key["dtype"] == "array"
    assert spectrum_key["shape"] == [20]
    assert spectrum_key["dtype_numpy"] == "<f8"
    assert image_key["shape"] == [6, 5]
    assert image_key["dtype_numpy"] == "<f8"
    assert energy_key["units"] == "eV"
    np.testing.assert_array_equal(
        microscope.eels.read_configuration()["eels_energy_axis"]["value"], recording.energy_axis
    )


def test_read_matches_describe_for_every_device(recording, run_engine):
    microscope = SimulatedMicroscope(recording)
    run_engine(bps.mv(microscope.scan, (1.0, 1.0)))
    for device in microscope.devices:
        device.trigger().wait(timeout=5)

        readings = device.read()
        described = device.describe()

        assert readings.keys() == described.keys()
        for key, reading in readings.items():
            assert list(np.shape(reading["value"])) == described[key]["shape"]
        configuration = device.read_configuration()
        assert configuration.keys() == device.describe_configuration().keys()


def test_configuration_keys_in_documents(recording, run_engine):
    microscope = SimulatedMicroscope(recording, exposure_time=0.25, settle_time=0.01)

    documents = collect(run_engine, bp.count([microscope.scan, microscope.haadf, microscope.eels]))
    (descriptor,) = [doc for name, doc in documents if name == "descriptor"]
    configuration = {
        key: value
        for device in descriptor["configuration"].values()
        for key, value in device["data"].items()
    }

    assert configuration["eels_exposure_time"] == 0.25
    assert configuration["stem_scan_settle_time"] == 0.01
    assert configuration["haadf_pixel_size"] == PIXEL_NM
    assert configuration["haadf_dwell_time"] == 1e-6


def test_invalid_settings_are_refused(recording):
    microscope = SimulatedMicroscope(recording)

    with pytest.raises(ValueError, match="eels_exposure_time must be greater than 0"):
        microscope.eels.exposure_time.put(0.0)
    with pytest.raises(ValueError, match="stem_scan_settle_time must be at least 0"):
        microscope.scan.settle_time.put(-1.0)
    with pytest.raises(ReadOnlyError):
        microscope.haadf.pixel_size.put(2.0)
    with pytest.raises(ReadOnlyError):
        microscope.eels.spectrum.put(np.zeros(20))


def test_exposure_time_scales_the_expected_counts(recording, run_engine):
    microscope = SimulatedMicroscope(recording, recording_exposure_time=0.5, exposure_time=1.5)

    documents = collect(run_engine, bp.count([microscope.eels]))
    (spectrum,) = events(documents, "eels_spectrum")

    np.testing.assert_allclose(spectrum, 3.0 * recording.spectra[0, 0])


def test_poisson_noise_is_seeded(recording, run_engine):
    readings = []
    for seed in (7, 7, 8):
        microscope = SimulatedMicroscope(recording, seed=seed, noise=True)
        documents = collect(run_engine, bp.count([microscope.eels], num=2))
        readings.append(np.array(events(documents, "eels_spectrum")))

    np.testing.assert_array_equal(readings[0], readings[1])
    assert not np.array_equal(readings[0], readings[2])
    assert not np.array_equal(readings[0][0], readings[0][1])
    assert np.all(readings[0] == np.round(readings[0]))
    assert not np.array_equal(readings[0][0], recording.spectra[0, 0])


def test_poisson_noise_has_the_recording_as_mean(recording):
    microscope = SimulatedMicroscope(recording, seed=3, noise=True)
    microscope.scan.set(microscope.position_of(2, 2)).wait(timeout=5)

    spectra = np.array(
        [microscope.backend.acquire_spectrum(1.0) for _ in range(400)]
    )
    expected = recording.spectra[2, 2].astype(float)

    # Standard error of a mean of 400 Poisson draws is sqrt(lambda / 400).
    tolerance = 5 * np.sqrt(np.maximum(expected, 1.0) / 400)
    assert np.all(np.abs(spectra.mean(axis=0) - expected) < tolerance)


def test_drift_moves_the_measured_pixel_along_a_seeded_direction(recording):
    microscope = SimulatedMicroscope(recording, seed=4, drift_nm_per_s=0.1)
    backend = microscope.backend
    microscope.scan.set(microscope.position_of(3, 2)).wait(timeout=5)

    first = backend.acquire_spectrum(1.0)
    for _ in range(9):
        backend.acquire_spectrum(1.0)
    dx, dy = backend.drift_offset_nm()

    np.testing.assert_array_equal(first, recording.spectra[3, 2])
    assert backend.clock_s == pytest.approx(10.0)
    assert math.hypot(dx, dy) == pytest.approx(1.0)
    assert (dx, dy) == pytest.approx(tuple(np.multiply(backend.drift_direction, 1.0)))
    assert backend.beam_pixel() == backend.grid.nearest_pixel(1.0 + dx, 1.5 + dy)
    assert backend.beam_pixel() != (3, 2)
    assert microscope.scan.position == (1.0, 1.5)
    again = SimulatedMicroscope(recording, seed=4, drift_nm_per_s=0.1).backend
    assert again.drift_direction == backend.drift_direction


def test_drift_does_not_change_the_noise_sequence(recording):
    quiet = SimulatedMicroscope(recording, seed=5, noise=True).backend
    drifting = SimulatedMicroscope(recording, seed=5, noise=True, drift_nm_per_s=1e-9).backend

    np.testing.assert_array_equal(quiet.acquire_spectrum(1.0), drifting.acquire_spectrum(1.0))


def test_dose_damage_attenuates_where_the_beam_dwelt(recording):
    microscope = SimulatedMicroscope(recording, damage_rate=0.5)
    backend = microscope.backend
    microscope.scan.set(microscope.position_of(1, 1)).wait(timeout=5)

    first = backend.acquire_spectrum(1.0)
    second = backend.acquire_spectrum(1.0)
    microscope.scan.set(microscope.position_of(4, 3)).wait(timeout=5)
    elsewhere = backend.acquire_spectrum(1.0)

    np.testing.assert_array_equal(first, recording.spectra[1, 1])
    np.testing.assert_allclose(second, recording.spectra[1, 1] * math.exp(-0.5))
    np.testing.assert_array_equal(elsewhere, recording.spectra[4, 3])
    assert backend.dose_s[1, 1] == 2.0
    assert backend.dose_s.sum() == 3.0


def test_dose_damage_shows_in_the_haadf_image(recording):
    microscope = SimulatedMicroscope(recording, damage_rate=0.5)
    backend = microscope.backend
    microscope.scan.set(microscope.position_of(1, 1)).wait(timeout=5)
    backend.acquire_spectrum(2.0)

    image = backend.acquire_image(1e-6)

    assert image[1, 1] == pytest.approx(recording.haadf[1, 1] * math.exp(-1.0))
    np.testing.assert_array_equal(image[0], recording.haadf[0])


def test_nan_spectra_at_injected_pixels(recording, run_engine):
    microscope = SimulatedMicroscope(recording, nan_pixels=[(0, 1)])
    microscope.inject_nan_spectra([(2, 2)])

    def plan():
        for row, column in [(0, 1), (2, 2), (3, 3)]:
            yield from bps.mv(microscope.scan, microscope.position_of(row, column))
            yield from bps.trigger_and_read([microscope.eels])

    spectra = events(collect(run_engine, _in_run(plan())), "eels_spectrum")

    assert np.all(np.isnan(spectra[0])) and np.all(np.isnan(spectra[1]))
    np.testing.assert_array_equal(spectra[2], recording.spectra[3, 3])
    with pytest.raises(ValueError, match="off the 6 x 5 scan grid"):
        microscope.inject_nan_spectra([(6, 0)])


def test_real_time_waits_for_exposure_and_settling(recording, run_engine):
    microscope = SimulatedMicroscope(
        recording, real_time=True, exposure_time=0.15, settle_time=0.1
    )

    started = time.perf_counter()
    status = microscope.eels.trigger()
    returned = time.perf_counter() - started
    status.wait(timeout=5)
    exposed = time.perf_counter() - started
    started = time.perf_counter()
    run_engine(bps.mv(microscope.scan, (1.0, 1.0)))
    settled = time.perf_counter() - started

    assert returned < 0.05
    assert exposed >= 0.15
    assert settled >= 0.1
    assert microscope.backend.clock_s == pytest.approx(0.25)


def test_status_of_a_failed_acquisition_reports_the_error(recording, monkeypatch):
    microscope = SimulatedMicroscope(recording)

    def refuse(exposure_time):
        raise RuntimeError("spectrometer camera not ready")

    monkeypatch.setattr(microscope.backend, "acquire_spectrum", refuse)
    status = microscope.eels.trigger()

    with pytest.raises(RuntimeError, match="camera not ready"):
        status.wait(timeout=5)
    assert status.done and not status.success


@pytest.mark.parametrize("target", ["five", None, True])
def test_move_to_something_that_is_not_a_number_says_what_was_given(recording, target):
    microscope = SimulatedMicroscope(recording)
    with pytest.raises(ValueError, match=rf"stem_scan_x moves to a position in nm, got "
                                         rf"{target!r}"):
        microscope.scan.x.set(target)
    assert microscope.scan.position == (0.0, 0.0)


def test_move_to_a_pair_with_text_says_what_was_given(recording):
    microscope = SimulatedMicroscope(recording)
    with pytest.raises(ValueError, match=r"moves to a pair \(x, y\) in nm, got \('a', 1.0\)"):
        microscope.scan.set(("a", 1.0))


def test_setting_a_negative_exposure_in_a_plan_fails_with_the_bound(recording, run_engine):
    microscope = SimulatedMicroscope(recording)
    with pytest.raises(ValueError, match="eels_exposure_time must be greater than 0.0 s, got -1"):
        run_engine(bps.mv(microscope.eels.exposure_time, -1))
    assert microscope.eels.exposure_time.get() == 1.0


@pytest.mark.parametrize("pixels", [[(1,)], [(1.5, 2.0)], ["ab"]])
def test_malformed_nan_pixels_are_refused(recording, pixels):
    microscope = SimulatedMicroscope(recording)
    with pytest.raises(ValueError, match=r"a NaN pixel is a pair \(row, column\) of whole"):
        microscope.inject_nan_spectra(pixels)
    assert microscope.backend.nan_pixels == []


def test_simulation_settings_that_are_not_numbers_are_refused(recording):
    with pytest.raises(ValueError, match="drift speed must be a finite number >= 0 "
                                         r"\(nm/s\), got 'fast'"):
        SimulatedMicroscope(recording, drift_nm_per_s="fast")
    recording.metadata["exposure_time_s"] = "long"
    with pytest.raises(ValueError, match=r"metadata 'exposure_time_s'\) must be a positive"):
        SimulatedMicroscope(recording)
