"""The adaptive experiment end to end: RunEngine, simulated devices on real data, Tiled."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from hae_bluesky.analysis.runs import load_run
from hae_bluesky.catalog import open_catalog
from hae_bluesky.data import scalarizer_from_spec, scalarizer_preset
from hae_bluesky.devices import SimulatedMicroscope
from hae_bluesky.experiment import run_simulated_experiment, settings_from_start
from hae_bluesky.plans import ExperimentControl, adaptive_experiment

SEEDS, BUDGET = 5, 8
FAST = {"model_settings": {"initial_iterations": 30, "warm_iterations": 5}}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    with open_catalog(tmp_path_factory.mktemp("catalog")) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def cu_scalarizer():
    return scalarizer_preset("cu_l23")


@pytest.fixture(scope="module")
def finished(cuzn, catalog, cu_scalarizer):
    result = run_simulated_experiment(
        cuzn, catalog, scalarizer=cu_scalarizer, policy={"kind": "ei", "xi": 0.01},
        n_seeds=SEEDS, budget=BUDGET, seed=3, agent_options=FAST)
    return result, load_run(result.uid, catalog=catalog)


def test_run_has_one_measurement_per_seed_and_step(finished):
    result, record = finished
    measurements = record.stream("measurements")
    assert len(measurements["step"]) == SEEDS + BUDGET
    assert int(np.sum(measurements["seed_point"])) == SEEDS
    assert result.reason == "budget"
    assert record.stop["exit_status"] == "success"


def test_no_position_is_measured_twice(finished):
    _, record = finished
    measurements = record.stream("measurements")
    pixels = set(zip(measurements["row"].tolist(), measurements["column"].tolist(),
                     strict=True))
    assert len(pixels) == SEEDS + BUDGET


def test_recorded_spectra_equal_the_recording(finished, cuzn):
    _, record = finished
    measurements = record.stream("measurements")
    for row, column, spectrum in zip(measurements["row"], measurements["column"],
                                     measurements["eels_spectrum"], strict=True):
        assert np.array_equal(spectrum, cuzn.spectra[row, column])


def test_scalarizer_values_match_recomputation(finished, cuzn, cu_scalarizer):
    _, record = finished
    measurements = record.stream("measurements")
    expected = scalarizer_from_spec(cu_scalarizer)(cuzn.spectra, cuzn.energy_axis)
    assert np.allclose(measurements["scalarizer_value"],
                       expected[measurements["row"], measurements["column"]])


def test_decisions_stream_has_one_row_per_step(finished):
    _, record = finished
    decisions = record.stream("decisions")
    assert decisions["step"].tolist() == list(range(BUDGET))
    measured = record.stream("measurements")
    adaptive = ~measured["seed_point"]
    assert decisions["row"].tolist() == measured["row"][adaptive].tolist()
    assert np.all(np.isfinite(decisions["std"])) and np.all(decisions["std"] >= 0)
    assert np.all(np.isfinite(decisions["uncertainty_mean"]))


def test_haadf_stream_holds_the_image(finished, cuzn):
    _, record = finished
    assert np.array_equal(record.stream("haadf")["haadf_image"][0], cuzn.haadf)


def test_start_metadata_redoes_the_same_experiment(finished, cuzn, catalog):
    _, record = finished
    settings = settings_from_start(record.start)
    again = run_simulated_experiment(cuzn, catalog, **settings)
    replay = load_run(again.uid, catalog=catalog).stream("measurements")
    original = record.stream("measurements")
    assert replay["row"].tolist() == original["row"].tolist()
    assert replay["column"].tolist() == original["column"].tolist()


def test_nan_spectrum_is_recorded_and_the_experiment_goes_on(cuzn, catalog, cu_scalarizer):
    first_seed = _first_seed_pixel(cuzn, seed=4)
    result = run_simulated_experiment(
        cuzn, catalog, scalarizer=cu_scalarizer, n_seeds=SEEDS, budget=4, seed=4,
        agent_options=FAST, microscope_options={"nan_pixels": [first_seed]})
    measurements = load_run(result.uid, catalog=catalog).stream("measurements")
    assert len(measurements["step"]) == SEEDS + 4
    bad = (measurements["row"] == first_seed[0]) & (measurements["column"] == first_seed[1])
    assert bad.sum() == 1
    assert np.isnan(measurements["scalarizer_value"][bad][0])
    assert np.all(np.isfinite(measurements["scalarizer_value"][~bad]))


def _first_seed_pixel(cuzn, seed):
    from hae_bluesky.data import extract_patches

    patches = extract_patches(cuzn.haadf, 5, cuzn.pixel_size_nm)
    index = int(np.random.default_rng(seed).choice(len(patches), size=SEEDS, replace=False)[0])
    return int(patches.rows[index]), int(patches.columns[index])


def test_stop_request_ends_the_run_cleanly(cuzn, catalog, cu_scalarizer):
    control = ExperimentControl()
    stopped_at = 3

    def stop_after_steps(name, doc):
        if (name == "event" and control.running and control.stop_reason is None
                and doc["data"].get("step") == stopped_at):
            control.request_stop("enough", user="tester")

    result = run_simulated_experiment(
        cuzn, catalog, scalarizer=cu_scalarizer, n_seeds=SEEDS, budget=BUDGET, seed=5,
        agent_options=FAST, control=control, callbacks=[stop_after_steps])
    record = load_run(result.uid, catalog=catalog)
    assert result.reason == "enough by tester"
    assert record.stop["exit_status"] == "success"
    assert record.stop["reason"] == "enough by tester"
    assert len(record.stream("measurements")["step"]) == SEEDS + stopped_at + 1
    interventions = record.stream("interventions")
    assert interventions["parameter"].tolist() == ["stop"]
    assert interventions["user"].tolist() == ["tester"]


def test_pause_at_a_checkpoint_and_resume(cuzn, cu_scalarizer):
    microscope = SimulatedMicroscope(cuzn)
    engine = RunEngine({}, call_returns_result=True)
    paused = threading.Event()

    def pause_once(name, doc):
        # request_pause blocks on the RunEngine's loop, which runs this
        # callback: ask from another thread, as an operator's console would.
        if name == "event" and doc["data"].get("step") == 2 and not paused.is_set():
            paused.set()
            threading.Thread(target=engine.request_pause, kwargs={"defer": True}).start()

    engine.subscribe(pause_once)
    plan = adaptive_experiment(microscope.scan, microscope.haadf, microscope.eels,
                               scalarizer=cu_scalarizer, n_seeds=SEEDS, budget=6, seed=6,
                               agent_options=FAST)
    with pytest.raises(RunEngineInterrupted):
        engine(plan)
    assert engine.state == "paused"
    result = engine.resume()
    assert engine.state == "idle"
    assert result.plan_result == "budget"
    assert result.exit_status == "success"


def test_seed_point_off_the_field_of_view_is_refused(cuzn, cu_scalarizer):
    microscope = SimulatedMicroscope(cuzn)
    engine = RunEngine({})
    plan = adaptive_experiment(microscope.scan, microscope.haadf, microscope.eels,
                               scalarizer=cu_scalarizer, seed_points=[[500.0, 1.0]],
                               budget=2, agent_options=FAST)
    with pytest.raises(ValueError, match="outside the field of view"):
        engine(plan)


def test_step_times_put_the_model_fit_in_the_agent_share(finished):
    result, record = finished
    times = result.step_times
    fit_seconds = record.stream("decisions")["fit_seconds"]
    assert len(times.agent) == len(times.device) == len(times.total) == BUDGET
    assert np.all(np.asarray(times.agent) >= fit_seconds)
    assert np.all(np.asarray(times.bookkeeping) >= 0)
