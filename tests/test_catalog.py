"""Specification of the Tiled catalog helper and of reading runs back from it."""

from __future__ import annotations

import numpy as np
import pytest
import stamina
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from ophyd import Signal

from hae_bluesky.analysis.runs import (
    load_run,
    read_configuration,
    read_start,
    read_stop,
    read_stream,
    stream_names,
)
from hae_bluesky.catalog import (
    CATALOG_DIR_ENV,
    TILED_API_KEY_ENV,
    TILED_URI_ENV,
    default_catalog_dir,
    open_catalog,
    subscribe_tiled_writer,
)
from hae_bluesky.devices import SimulatedMicroscope

PIXELS = [(0, 0), (17, 23), (49, 39)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """One embedded catalog for the module (starting a server takes seconds)."""
    with open_catalog(tmp_path_factory.mktemp("catalog")) as catalog:
        yield catalog


@pytest.fixture
def run_engine(catalog) -> RunEngine:
    run_engine = RunEngine({}, call_returns_result=False)
    subscribe_tiled_writer(run_engine, catalog)
    return run_engine


@pytest.fixture
def microscope(cuzn) -> SimulatedMicroscope:
    return SimulatedMicroscope(cuzn)


def measure(microscope, pixels):
    """Plan: one HAADF image, then a spectrum at each pixel, in named streams."""
    yield from bps.trigger_and_read([microscope.haadf], name="haadf")
    for row, column in pixels:
        yield from bps.mv(microscope.scan, microscope.position_of(row, column))
        yield from bps.trigger_and_read([microscope.scan, microscope.eels], name="measurements")


def experiment(microscope, pixels, **metadata):
    yield from bps.open_run(md=metadata)
    yield from measure(microscope, pixels)
    yield from bps.close_run()


def test_embedded_catalog_lives_in_the_given_directory(catalog):
    assert catalog.is_embedded
    assert (catalog.directory / "catalog.db").is_file()
    assert catalog.location == str(catalog.directory)
    assert catalog.uri.startswith("http://127.0.0.1:")


def test_count_spectra_read_back_equal_the_recording(catalog, run_engine, microscope, cuzn):
    run_engine(bps.mv(microscope.scan, microscope.position_of(17, 23)))

    (uid,) = run_engine(bp.count([microscope.eels], num=2))
    spectra = read_stream(catalog[uid], "primary")["eels_spectrum"]

    assert spectra.shape == (2, 162)
    np.testing.assert_array_equal(spectra[0], cuzn.spectra[17, 23])
    np.testing.assert_array_equal(spectra[1], cuzn.spectra[17, 23])


def test_streams_read_back_equal_the_recording(catalog, run_engine, microscope, cuzn):
    (uid,) = run_engine(experiment(microscope, PIXELS, sample="Cu/ZnO"))

    haadf = read_stream(uid, "haadf", catalog=catalog)
    measurements = read_stream(uid, "measurements", catalog=catalog)

    assert stream_names(catalog[uid]) == ["haadf", "measurements"]
    assert haadf["haadf_image"].shape == (1, 50, 40)
    np.testing.assert_array_equal(haadf["haadf_image"][0], cuzn.haadf)
    assert measurements["eels_spectrum"].shape == (3, 162)
    for spectrum, (row, column) in zip(measurements["eels_spectrum"], PIXELS, strict=True):
        np.testing.assert_array_equal(spectrum, cuzn.spectra[row, column])
    expected_x = [microscope.position_of(row, column)[0] for row, column in PIXELS]
    np.testing.assert_allclose(measurements["stem_scan_x"], expected_x)
    np.testing.assert_array_equal(measurements["seq_num"], [1, 2, 3])
    assert measurements["time"].shape == (3,)


def test_start_stop_and_configuration_round_trip(catalog, run_engine, microscope, cuzn):
    (uid,) = run_engine(experiment(microscope, PIXELS[:1], sample="Cu/ZnO", budget=3))

    start = read_start(uid, catalog=catalog)
    stop = read_stop(uid, catalog=catalog)
    configuration = read_configuration(uid, "measurements", catalog=catalog)

    assert start["uid"] == uid
    assert start["sample"] == "Cu/ZnO" and start["budget"] == 3
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"haadf": 1, "measurements": 1}
    np.testing.assert_array_equal(configuration["eels_energy_axis"], cuzn.energy_axis)
    assert configuration["eels_exposure_time"] == 1.0


def test_missing_stream_reads_as_empty(catalog, run_engine, microscope):
    (uid,) = run_engine(experiment(microscope, PIXELS[:1]))

    assert read_stream(catalog[uid], "decisions") == {}
    assert read_configuration(catalog[uid], "decisions") == {}


def test_declared_stream_without_events_reads_as_zero_length_arrays(
    catalog, run_engine, microscope
):
    operator = Signal(name="operator", value="")
    change = Signal(name="change", value="")

    def plan():
        yield from bps.open_run()
        yield from bps.declare_stream(operator, change, microscope.eels, name="interventions")
        yield from measure(microscope, PIXELS[:1])
        yield from bps.close_run()

    (uid,) = run_engine(plan())
    interventions = read_stream(catalog[uid], "interventions")

    assert "interventions" in stream_names(catalog[uid])
    assert interventions["operator"].shape == (0,)
    assert interventions["eels_spectrum"].shape == (0, 162)
    assert interventions["eels_spectrum"].dtype == np.dtype("<f8")
    assert interventions["seq_num"].shape == (0,)


def test_strings_and_numbers_read_back_as_arrays(catalog, run_engine):
    policy = Signal(name="policy", value="")
    acquisition_value = Signal(name="acquisition_value", value=0.0)

    def plan():
        yield from bps.open_run()
        for name, value in [("ei", 0.25), ("ucb", 1.5)]:
            yield from bps.mv(policy, name, acquisition_value, value)
            yield from bps.trigger_and_read([policy, acquisition_value], name="decisions")
        yield from bps.close_run()

    (uid,) = run_engine(plan())
    decisions = read_stream(catalog[uid], "decisions", include_timestamps=True)

    assert decisions["policy"].tolist() == ["ei", "ucb"]
    np.testing.assert_array_equal(decisions["acquisition_value"], [0.25, 1.5])
    assert decisions["ts_policy"].shape == (2,)


def test_selected_fields_and_unknown_field(catalog, run_engine, microscope):
    (uid,) = run_engine(experiment(microscope, PIXELS[:2]))

    positions = read_stream(catalog[uid], "measurements", fields=["stem_scan_x", "stem_scan_y"])

    assert set(positions) == {"stem_scan_x", "stem_scan_y", "time", "seq_num"}
    with pytest.raises(KeyError, match="no data key.*'scalarizer_value'"):
        read_stream(catalog[uid], "measurements", fields=["scalarizer_value"])


def test_nan_spectrum_round_trips(catalog, run_engine, cuzn):
    microscope = SimulatedMicroscope(cuzn, nan_pixels=[PIXELS[1]])

    (uid,) = run_engine(experiment(microscope, PIXELS))
    spectra = read_stream(catalog[uid], "measurements")["eels_spectrum"]

    assert np.all(np.isnan(spectra[1]))
    np.testing.assert_array_equal(spectra[2], cuzn.spectra[PIXELS[2]])


def test_running_experiment_is_readable_live(catalog, run_engine, microscope, cuzn):
    seen = {}

    def plan():
        uid = yield from bps.open_run()
        yield from measure(microscope, PIXELS[:2])
        seen["stop"] = read_stop(uid, catalog=catalog)
        seen["spectra"] = read_stream(uid, "measurements", catalog=catalog)["eels_spectrum"]
        yield from measure(microscope, PIXELS[2:])
        yield from bps.close_run()

    run_engine(plan())

    assert seen["stop"] is None
    assert seen["spectra"].shape == (2, 162)
    np.testing.assert_array_equal(seen["spectra"][1], cuzn.spectra[PIXELS[1]])


def test_load_run_collects_everything(catalog, run_engine, microscope, cuzn):
    (uid,) = run_engine(experiment(microscope, PIXELS, sample="Cu/ZnO"))

    record = load_run(uid, catalog=catalog)

    assert record.uid == uid
    assert record.start["sample"] == "Cu/ZnO"
    assert record.stop["exit_status"] == "success"
    assert set(record.streams) == {"haadf", "measurements"}
    np.testing.assert_array_equal(record.stream("haadf")["haadf_image"][0], cuzn.haadf)
    assert record.stream("interventions") == {}
    np.testing.assert_array_equal(
        record.configuration["measurements"]["eels_energy_axis"], cuzn.energy_axis
    )


def test_unsubscribed_writer_stores_nothing(catalog, microscope):
    run_engine = RunEngine({}, call_returns_result=False)
    token = subscribe_tiled_writer(run_engine, catalog)
    run_engine.unsubscribe(token)

    (uid,) = run_engine(bp.count([microscope.eels]))

    with pytest.raises(KeyError, match="no run with uid"):
        read_start(uid, catalog=catalog)


def test_catalog_persists_across_servers(tmp_path, microscope, cuzn):
    directory = tmp_path / "persistent"
    with open_catalog(directory) as first:
        run_engine = RunEngine({}, call_returns_result=False)
        subscribe_tiled_writer(run_engine, first)
        (uid,) = run_engine(experiment(microscope, PIXELS[1:2]))

    with open_catalog(directory) as second:
        spectra = read_stream(uid, "measurements", catalog=second)["eels_spectrum"]

    np.testing.assert_array_equal(spectra[0], cuzn.spectra[PIXELS[1]])


def test_environment_points_at_an_existing_server(catalog, monkeypatch):
    server = catalog.server
    monkeypatch.setenv(TILED_URI_ENV, server.uri.split("?", 1)[0])
    monkeypatch.setenv(TILED_API_KEY_ENV, server.api_key)

    with open_catalog() as remote:
        assert not remote.is_embedded
        assert remote.directory is None
        assert set(remote.client) == set(catalog.client)


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CATALOG_DIR_ENV, str(tmp_path / "elsewhere"))

    assert default_catalog_dir() == tmp_path / "elsewhere"


def test_directory_and_uri_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="either a catalog directory"):
        open_catalog(tmp_path, uri="http://localhost:8000")


def test_wrong_api_key_is_a_clear_error(catalog, monkeypatch):
    monkeypatch.delenv(TILED_API_KEY_ENV, raising=False)
    address = catalog.server.uri.split("?", 1)[0]

    with pytest.raises(ValueError, match="Tiled server at .* (refused|cannot be used).*API key"):
        open_catalog(uri=address, api_key="not-the-key")


def test_missing_api_key_is_a_clear_error(catalog, monkeypatch):
    monkeypatch.delenv(TILED_API_KEY_ENV, raising=False)
    address = catalog.server.uri.split("?", 1)[0]

    with pytest.raises(ValueError, match="requires API key authentication.*give the API key"):
        open_catalog(uri=address)


@pytest.fixture
def single_attempt():
    """The Tiled client retries a refused connection for half a minute; try once."""
    stamina.set_testing(True, attempts=1)
    yield
    stamina.set_testing(False)


def test_unreachable_server_is_a_clear_error(monkeypatch, single_attempt):
    monkeypatch.delenv(TILED_API_KEY_ENV, raising=False)
    # Port 9 (discard) has no Tiled server on loopback.
    with pytest.raises(ValueError, match="cannot reach the Tiled server at http://127.0.0.1:9"):
        open_catalog(uri="http://127.0.0.1:9/api/v1")
