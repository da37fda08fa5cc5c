"""Forensics on a short real run on the Cu/ZnO recording: replay, baseline, model comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hae_bluesky.analysis.forensics import (
    FORENSICS_KEY,
    compare_models,
    counterfactual_replay,
    find_forensics,
    random_baseline,
)
from hae_bluesky.analysis.runs import load_run
from hae_bluesky.catalog import open_catalog
from hae_bluesky.data import extract_patches, scalarizer_from_spec, scalarizer_preset
from hae_bluesky.experiment import candidate_truth, run_simulated_experiment

SEEDS, BUDGET = 3, 4
FAST = {"model_settings": {"initial_iterations": 30, "warm_iterations": 5}}
COMPLETE_FAST = {"model_settings": {"initial_iterations": 10}}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    with open_catalog(tmp_path_factory.mktemp("forensics")) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def original(cuzn, catalog):
    result = run_simulated_experiment(
        cuzn, catalog, scalarizer=scalarizer_preset("cu_l23"),
        policy={"kind": "ei", "xi": 0.01}, n_seeds=SEEDS, budget=BUDGET, seed=5,
        agent_options=FAST)
    return load_run(result.uid, catalog=catalog)


@pytest.fixture(scope="module")
def replay(original, catalog):
    forensic = counterfactual_replay(original.uid, catalog, "zn_l23")
    return forensic, load_run(forensic.uid, catalog=catalog)


@pytest.fixture(scope="module")
def baseline(original, catalog):
    forensic = random_baseline(original.uid, catalog)
    return forensic, load_run(forensic.uid, catalog=catalog)


@pytest.fixture(scope="module")
def comparison(original, catalog):
    return compare_models(original.uid, catalog, complete_options=COMPLETE_FAST)


def _pixels(record):
    measurements = record.stream("measurements")
    return list(zip(measurements["row"].tolist(), measurements["column"].tolist(),
                    strict=True))


def test_replay_measures_the_original_positions_in_the_same_order(original, replay):
    forensic, record = replay

    assert _pixels(record) == _pixels(original)
    assert forensic.mismatched_steps == ()
    assert forensic.reason == "budget"
    seeds = record.stream("measurements")["seed_point"]
    assert seeds.tolist() == original.stream("measurements")["seed_point"].tolist()


def test_replay_values_are_the_new_scalarizer_of_the_recorded_spectra(replay, cuzn):
    _, record = replay
    measurements = record.stream("measurements")
    zinc = scalarizer_from_spec(scalarizer_preset("zn_l23"))

    expected = zinc(cuzn.spectra, cuzn.energy_axis)[measurements["row"],
                                                   measurements["column"]]
    recomputed = zinc(measurements["eels_spectrum"], cuzn.energy_axis)

    np.testing.assert_allclose(measurements["scalarizer_value"], expected)
    np.testing.assert_allclose(measurements["scalarizer_value"], recomputed)


def test_replay_decisions_are_refitted_beliefs_under_the_new_scalarizer(original, replay):
    _, record = replay
    decisions = record.stream("decisions")

    assert len(decisions["row"]) == BUDGET
    assert set(decisions["source"].tolist()) == {"point_of_interest"}
    assert {json.dumps(json.loads(spec), sort_keys=True) for spec in decisions["scalarizer"]} \
        == {json.dumps(scalarizer_from_spec(scalarizer_preset("zn_l23")).to_spec(),
                       sort_keys=True)}
    assert np.all(np.isfinite(decisions["uncertainty_mean"]))
    assert not np.allclose(decisions["uncertainty_mean"],
                           original.stream("decisions")["uncertainty_mean"])


def test_replay_records_the_imposed_positions_as_an_intervention(replay):
    _, record = replay
    interventions = record.stream("interventions")

    assert interventions["parameter"].tolist() == ["points_of_interest"]
    assert interventions["user"].tolist() == ["hae forensics"]
    assert len(json.loads(interventions["after"][0])) == BUDGET


def test_random_baseline_keeps_the_seed_points_and_the_budget(original, baseline, cuzn):
    forensic, record = baseline
    measurements = record.stream("measurements")
    seeds = measurements["seed_point"]
    pixels = _pixels(record)

    assert pixels[:SEEDS] == _pixels(original)[:SEEDS]
    assert seeds.tolist() == [True] * SEEDS + [False] * BUDGET
    assert len(set(pixels)) == SEEDS + BUDGET
    patches = extract_patches(cuzn.haadf, 5, cuzn.pixel_size_nm)
    for row, column in pixels:
        patches.index_of(row, column)
    assert record.start["hae"]["policy"] == {"kind": "random"}
    assert forensic.reason == "budget"


def test_forensic_runs_link_to_the_original(original, replay, baseline, comparison,
                                            catalog):
    replayed, baseline_run = replay[1], baseline[1]
    stored = load_run(comparison.uid, catalog=catalog, streams=["models"])

    for record, kind in ((replayed, "counterfactual_replay"),
                         (baseline_run, "random_baseline"), (stored, "model_comparison")):
        assert record.start[FORENSICS_KEY]["original_uid"] == original.uid
        assert record.start[FORENSICS_KEY]["kind"] == kind
    assert sorted(find_forensics(catalog, original.uid)) == sorted(
        [replayed.uid, baseline_run.uid, stored.uid])
    assert find_forensics(catalog, original.uid, "random_baseline") == [baseline_run.uid]


def test_complete_model_is_more_certain_than_the_live_model(comparison):
    assert comparison.complete.n_training == 1656
    assert comparison.complete.uncertainty_mean < comparison.live_uncertainty_last
    assert comparison.complete.uncertainty_mean < comparison.final.uncertainty_mean
    assert comparison.complete.rmse < comparison.final.rmse


def test_live_error_is_the_error_at_the_chosen_position(comparison, original, cuzn):
    decisions = original.stream("decisions")
    truth = candidate_truth(cuzn, scalarizer_preset("cu_l23"), 5)

    expected = np.abs(decisions["mean"] - truth[decisions["row"], decisions["column"]])

    np.testing.assert_allclose(comparison.live_error, expected)
    np.testing.assert_allclose(comparison.live_uncertainty, decisions["uncertainty_mean"])
    assert comparison.final.n_training == SEEDS + BUDGET


def test_model_comparison_is_stored_with_its_numbers(comparison, catalog):
    stored = load_run(comparison.uid, catalog=catalog, streams=["live_model", "models"])
    models = stored.stream("models")

    assert stored.start[FORENSICS_KEY]["result"]["complete"]["uncertainty_mean"] == (
        pytest.approx(comparison.complete.uncertainty_mean))
    assert models["model"].tolist() == ["final", "complete"]
    np.testing.assert_allclose(models["rmse"], [comparison.final.rmse,
                                                comparison.complete.rmse])
    np.testing.assert_allclose(models["posterior_std"].mean(axis=1),
                               [comparison.final.uncertainty_mean,
                                comparison.complete.uncertainty_mean])
    np.testing.assert_allclose(stored.stream("live_model")["error"], comparison.live_error)


def test_replay_refuses_a_scalarizer_outside_the_energy_axis(original, catalog):
    with pytest.raises(ValueError, match="2100"):
        counterfactual_replay(original.uid, catalog,
                              {"kind": "band_integral", "window": [2100, 2200]})
