"""The DKL agent on the real Cu/ZnO recording: API, robustness, interventions, state."""

from __future__ import annotations

import json
import logging
import math
import threading

import numpy as np
import pytest
import torch
from linear_operator.utils.errors import NotPSDError

from hae_bluesky.agent import Decision, DKLAgent, Policy
from hae_bluesky.agent.acquisition import log_expected_improvement, upper_confidence_bound
from hae_bluesky.data import scalarizer_from_spec, scalarizer_preset

FAST = {"initial_iterations": 30, "warm_iterations": 5}

# (row, column) of four seed points, all centres of whole 5 x 5 patches of the 50 x 40 image.
SEEDS = [(10, 10), (20, 30), (40, 15), (5, 35)]

ZN_BAND = {"kind": "band_integral", "window": [1020, 1100]}

REPORT_KEYS = {
    "step", "n_measured", "n_bad", "uncertainty_mean", "uncertainty_std", "next_uncertainty",
    "best_value", "best_row", "best_column", "training_loss", "fit_seconds", "fit_iterations",
    "fallback", "policy", "scalarizer", "patch_size", "off_policy", "points_of_interest",
}


def make_agent(cuzn, haadf=None, **options) -> DKLAgent:
    options = {"pixel_size_nm": cuzn.pixel_size_nm, "model_settings": FAST, **options}
    scalarizer = options.pop("scalarizer", scalarizer_preset("cu_l23"))
    return DKLAgent(cuzn.haadf if haadf is None else haadf, cuzn.energy_axis, scalarizer,
                    **options)


def measure(agent: DKLAgent, cuzn, pixels) -> list[dict]:
    return agent.ingest([{"row": row, "column": column, "spectrum": cuzn.spectra[row, column]}
                         for row, column in pixels])


def measured_pixels(agent: DKLAgent) -> set[tuple[int, int]]:
    return {(m.row, m.column) for m in agent.measurements}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Fit on one thread: at these sizes more threads only contend (several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def as_text(decisions: list[Decision]) -> list[str]:
    """Decisions as exact text (NaN included), for comparing two agents."""
    return [json.dumps(decision.to_dict()) for decision in decisions]


@pytest.fixture
def seeded(cuzn) -> DKLAgent:
    """An agent with the four seed spectra ingested (not yet fitted)."""
    agent = make_agent(cuzn)
    measure(agent, cuzn, SEEDS)
    return agent


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize("options, message", [
    ({"patch_size": 51}, "patch size 51 is larger than the 50 x 40 HAADF image"),
    ({"patch_size": 0}, "patch size must be a positive integer"),
    ({"pixel_size_nm": -1.0}, "pixel size must be a positive number of nm"),
    ({"policy": {"kind": "ucb", "xi": 1}}, "has no parameter"),
    ({"model_settings": {"iterations": 3}}, "unknown model setting"),
    ({"scalarizer": {"kind": "band_integral", "window": [100, 200]}}, "outside the "
     "spectrometer range"),
])
def test_constructor_refuses_settings_that_cannot_work(cuzn, options, message):
    with pytest.raises(ValueError, match=message):
        make_agent(cuzn, **options)


def test_candidates_are_every_whole_patch_of_the_image(cuzn):
    agent = make_agent(cuzn, patch_size=5)

    assert len(agent.patches) == (50 - 4) * (40 - 4)
    assert agent.patches.values.shape[1:] == (5, 5)


# ---------------------------------------------------------------------- ingest


def test_ingest_by_row_and_column_scalarises_the_spectrum(cuzn):
    agent = make_agent(cuzn)
    expected = scalarizer_from_spec(scalarizer_preset("cu_l23"))(cuzn.spectra[20, 30],
                                                                 cuzn.energy_axis)

    added = agent.ingest([{"row": 20, "column": 30, "spectrum": cuzn.spectra[20, 30]}])

    assert added == [{"row": 20, "column": 30, "value": pytest.approx(expected), "bad": False,
                      "reason": ""}]
    assert agent.step == 1
    assert agent.measurements[0].spectrum.tolist() == cuzn.spectra[20, 30].tolist()


def test_ingest_by_patch_index_records_the_patch_centre(cuzn):
    agent = make_agent(cuzn)
    index = 700
    row, column = int(agent.patches.rows[index]), int(agent.patches.columns[index])

    added = agent.ingest([{"patch_index": index, "spectrum": cuzn.spectra[row, column]}])

    assert (added[0]["row"], added[0]["column"]) == (row, column)
    assert agent.patches.index_of(row, column) == index


def test_ingest_by_position_rounds_to_the_nearest_pixel(cuzn):
    agent = make_agent(cuzn)
    size = cuzn.pixel_size_nm
    x_nm, y_nm = (30 + 0.4) * size, (20 - 0.4) * size

    added = agent.ingest([{"position_nm": (x_nm, y_nm), "spectrum": cuzn.spectra[20, 30]}])

    assert (added[0]["row"], added[0]["column"]) == (20, 30)


def test_ingest_of_a_value_needs_no_spectrum(cuzn):
    agent = make_agent(cuzn)

    added = agent.ingest([{"row": 3, "column": 4, "value": 12.5}])

    assert added[0]["value"] == 12.5
    assert agent.measurements[0].spectrum is None


@pytest.mark.parametrize("reading, message", [
    ({"spectrum": np.ones(162)}, "a reading needs 'patch_index'"),
    ({"row": 50, "column": 0, "value": 1.0}, "off the 50 x 40 image"),
    ({"row": 0, "column": -1, "value": 1.0}, "off the 50 x 40 image"),
    ({"patch_index": 1656, "value": 1.0}, "patch index 1656 is not in 0..1655"),
    ({"position_nm": (-5.0, 0.0), "value": 1.0}, "outside the field of view"),
    ({"position_nm": (0.0, math.nan), "value": 1.0}, "not finite"),
    ({"row": 3, "column": 3, "spectrum": np.ones(161)}, "spectrum has 161 channels"),
    ({"row": 3, "column": 3}, "needs a 'spectrum' or a 'value'"),
    ({"patch_index": None, "value": 1.0}, "patch_index"),
    ({"row": None, "column": 3, "value": 1.0}, "row"),
    ({"position_nm": (5.0,), "value": 1.0}, "position_nm"),
    ({"row": 3, "column": 3, "value": None}, "value"),
    ({"row": 3, "column": 3, "value": "high"}, "value"),
])
def test_bad_reading_raises_and_adds_nothing(cuzn, reading, message):
    agent = make_agent(cuzn)
    good = {"row": 10, "column": 10, "spectrum": cuzn.spectra[10, 10]}

    with pytest.raises(ValueError, match=message):
        agent.ingest([good, reading])

    assert agent.step == 0
    assert agent.measurements == []


# --------------------------------------------------------------------- suggest


def test_suggest_returns_a_decision_with_every_field(seeded, cuzn):
    decision, = seeded.suggest(1)

    size = cuzn.pixel_size_nm
    posterior = seeded.predict()
    assert isinstance(decision, Decision)
    assert decision.step == 4
    assert decision.source == "policy"
    assert decision.policy == {"kind": "ei", "xi": 0.01}
    assert seeded.patches.index_of(decision.row, decision.column) == decision.patch_index
    assert (decision.x_nm, decision.y_nm) == pytest.approx((decision.column * size,
                                                            decision.row * size))
    assert decision.mean == posterior.mean[decision.patch_index]
    assert decision.std == posterior.std[decision.patch_index]
    assert decision.std > 0
    assert math.isfinite(decision.acquisition_value)
    assert json.loads(json.dumps(decision.to_dict(), allow_nan=False)) == decision.to_dict()


def test_suggested_value_is_the_largest_acquisition_value(seeded):
    decision, = seeded.suggest(1)

    acquisition = seeded.acquisition_map()
    assert decision.acquisition_value == acquisition[decision.patch_index]
    assert decision.acquisition_value == np.max(acquisition)


def test_expected_improvement_is_over_the_best_measured_value(seeded):
    decision, = seeded.suggest(1)

    posterior, model = seeded.predict(), seeded.model
    best = max(m.value for m in seeded.measurements)
    expected = log_expected_improvement(
        (posterior.mean - model.target_mean) / model.target_scale,
        posterior.std / model.target_scale,
        (best - model.target_mean) / model.target_scale, xi=0.01)
    acquisition = seeded.acquisition_map()
    available = np.isfinite(acquisition)
    assert available.sum() == len(seeded.patches) - len(SEEDS)
    assert acquisition[available] == pytest.approx(expected[available], rel=1e-9, abs=1e-12)
    assert decision.acquisition_value == pytest.approx(acquisition[available].max())


def test_upper_confidence_bound_policy_is_mean_plus_beta_sigma(cuzn):
    agent = make_agent(cuzn, policy={"kind": "ucb", "beta": 3.0})
    measure(agent, cuzn, SEEDS)

    decision, = agent.suggest(1)

    posterior, model = agent.predict(), agent.model
    expected = upper_confidence_bound((posterior.mean - model.target_mean) / model.target_scale,
                                      posterior.std / model.target_scale, beta=3.0)
    acquisition = agent.acquisition_map()
    available = np.isfinite(acquisition)
    assert acquisition[available] == pytest.approx(expected[available], rel=1e-9)
    assert decision.patch_index == int(np.argmax(np.where(available, expected, -np.inf)))


def test_suggest_never_proposes_a_measured_position(seeded, cuzn):
    first, = seeded.suggest(1)
    measure(seeded, cuzn, [(first.row, first.column)])

    batch = seeded.suggest(6)

    pixels = [(d.row, d.column) for d in batch]
    assert len(batch) == 6
    assert len(set(pixels)) == 6
    assert not set(pixels) & measured_pixels(seeded)


def test_suggest_never_proposes_a_measured_position_when_no_score_is_finite(cuzn,
                                                                           monkeypatch):
    agent = make_agent(cuzn)
    first = (int(agent.patches.rows[0]), int(agent.patches.columns[0]))
    measure(agent, cuzn, [first, *SEEDS])
    monkeypatch.setattr(Policy, "acquisition",
                        lambda self, mean, *args, **kwargs: np.full(len(mean), np.nan))

    batch = agent.suggest(2)

    pixels = {(d.row, d.column) for d in batch}
    assert len(pixels) == 2
    assert not pixels & measured_pixels(agent)


def test_travel_penalty_keeps_the_beam_next_to_the_last_measurement(seeded, cuzn):
    seeded.set_policy({"kind": "mu", "travel_weight": 1000.0})

    decision, = seeded.suggest(1)

    last = seeded.measurements[-1]
    assert math.hypot(decision.row - last.row, decision.column - last.column) == 1.0


def test_exclusion_penalty_keeps_the_choice_away_from_measured_positions(seeded, cuzn):
    radius, weight = 3.0, 1000.0
    seeded.set_policy({"kind": "mu", "exclusion_radius_nm": radius,
                       "exclusion_weight": weight})

    decision, = seeded.suggest(1)

    # a candidate far from every measurement scores at least about 0, so the choice has
    # weight * exp(-d^2 / (2 r^2)) <= 1 (+ a little) at its distance d from the nearest one
    size = cuzn.pixel_size_nm
    nearest = min(math.hypot(decision.row - r, decision.column - c) for r, c in SEEDS) * size
    assert nearest >= math.sqrt(2 * radius**2 * math.log(weight / 1.01))


def test_suggest_offers_only_the_candidates_left(cuzn):
    haadf = cuzn.haadf[:8, :8]
    agent = DKLAgent(haadf, cuzn.energy_axis, scalarizer_preset("cu_l23"), patch_size=5,
                     model_settings=FAST)
    centres = list(zip(agent.patches.rows.tolist(), agent.patches.columns.tolist(),
                       strict=True))
    left = centres[5:8]
    agent.ingest([{"row": r, "column": c, "spectrum": cuzn.spectra[r, c]}
                  for r, c in centres if (r, c) not in left])

    batch = agent.suggest(5)

    assert sorted((d.row, d.column) for d in batch) == sorted(left)
    measure(agent, cuzn, left)
    assert agent.suggest(1) == []


def test_suggest_needs_at_least_one_position(seeded):
    with pytest.raises(ValueError, match="at least 1"):
        seeded.suggest(0)
    with pytest.raises(ValueError, match="whole number"):
        seeded.suggest(2.5)


def test_every_policy_kind_chooses_an_unmeasured_candidate(seeded):
    seeded.suggest(1)

    for kind in ("ei", "ucb", "mu", "pi", "thompson", "random"):
        seeded.set_policy(kind)
        decision, = seeded.suggest(1)
        assert decision.policy["kind"] == kind
        assert decision.source == "policy"
        assert (decision.row, decision.column) not in measured_pixels(seeded)
        assert math.isfinite(decision.acquisition_value)


def test_without_measurements_the_choice_is_random_and_reported(cuzn):
    agent = make_agent(cuzn)

    decision, = agent.suggest(1)

    assert decision.source == "no_data"
    assert math.isnan(decision.mean) and math.isnan(decision.acquisition_value)
    assert agent.report()["fallback"] == "no_data"
    assert np.isinf(agent.predict().std).all()


def test_without_measurements_the_seed_decides_the_random_choice(cuzn):
    first = make_agent(cuzn, seed=3).suggest(4)
    again = make_agent(cuzn, seed=3).suggest(4)

    assert [d.patch_index for d in first] == [d.patch_index for d in again]
    assert len({d.patch_index for d in first}) == 4


# ---------------------------------------------------------------------- report


def test_report_has_every_documented_key_and_is_json(seeded):
    seeded.suggest(1)

    report = seeded.report()

    assert set(report) == REPORT_KEYS
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_report_values_describe_the_step(seeded):
    decision, = seeded.suggest(1)

    report = seeded.report()
    values = [m.value for m in seeded.measurements]
    best = SEEDS[int(np.argmax(values))]
    std = seeded.predict().std
    assert (report["step"], report["n_measured"], report["n_bad"]) == (4, 4, 0)
    assert report["best_value"] == max(values)
    assert (report["best_row"], report["best_column"]) == best
    assert report["uncertainty_mean"] == pytest.approx(np.mean(std))
    assert report["uncertainty_std"] == pytest.approx(np.std(std))
    assert report["next_uncertainty"] == decision.std
    assert report["fallback"] is None
    assert 1 <= report["fit_iterations"] <= FAST["initial_iterations"]
    assert math.isfinite(report["training_loss"]) and report["fit_seconds"] > 0
    assert report["policy"] == {"kind": "ei", "xi": 0.01}
    assert report["scalarizer"] == scalarizer_from_spec(scalarizer_preset("cu_l23")).to_spec()
    assert (report["patch_size"], report["off_policy"], report["points_of_interest"]) == (
        5, False, [])


def test_report_before_any_step_is_json(cuzn):
    report = make_agent(cuzn).report()

    assert set(report) == REPORT_KEYS
    assert report["step"] == 0 and report["best_value"] is None
    json.dumps(report, allow_nan=False)


# ------------------------------------------------------------------ robustness


def test_a_single_seed_point_gives_a_policy_decision(cuzn):
    agent = make_agent(cuzn)
    measure(agent, cuzn, SEEDS[:1])

    decision, = agent.suggest(1)

    assert decision.source == "policy"
    assert (decision.row, decision.column) != SEEDS[0]
    assert math.isfinite(decision.mean) and decision.std > 0
    json.dumps(agent.report(), allow_nan=False)


def test_duplicate_positions_are_trained_on_and_not_suggested(cuzn):
    agent = make_agent(cuzn)
    agent.ingest([{"row": 20, "column": 20, "value": value} for value in (1.0, 1.5, 0.5)])
    agent.ingest([{"row": 30, "column": 10, "value": 2.0}])

    decision, = agent.suggest(1)

    assert agent.model.state_dict()["train_index"].size == 4
    assert decision.source == "policy"
    assert (decision.row, decision.column) not in {(20, 20), (30, 10)}
    assert math.isfinite(decision.mean) and math.isfinite(decision.std)


def test_constant_targets_predict_the_constant(cuzn):
    agent = make_agent(cuzn)
    agent.ingest([{"row": r, "column": c, "value": 7.0} for r, c in SEEDS])

    decision, = agent.suggest(1)

    posterior = agent.predict()
    assert decision.source == "policy"
    assert np.all(np.isfinite(posterior.mean)) and np.all(np.isfinite(posterior.std))
    assert posterior.mean == pytest.approx(7.0, abs=1e-3)
    assert (decision.row, decision.column) not in set(SEEDS)


@pytest.mark.parametrize("glitch", [math.nan, math.inf])
def test_non_finite_spectrum_is_kept_as_bad_and_left_out_with_a_warning(seeded, cuzn, caplog,
                                                                        glitch):
    spectrum = cuzn.spectra[25, 25].astype(float)
    spectrum[40] = glitch

    with caplog.at_level(logging.WARNING, logger="hae_bluesky.agent"):
        added = seeded.ingest([{"row": 25, "column": 25, "spectrum": spectrum}])
    decision, = seeded.suggest(1)

    assert added[0]["bad"] is True and math.isnan(added[0]["value"])
    assert "NaN or inf" in added[0]["reason"]
    assert any("(25, 25) is bad" in record.getMessage() for record in caplog.records)
    assert seeded.model.state_dict()["train_index"].size == 4
    assert (seeded.report()["n_measured"], seeded.report()["n_bad"]) == (5, 1)
    assert (decision.row, decision.column) != (25, 25)
    json.dumps(seeded.report(), allow_nan=False)


def test_only_bad_measurements_count_as_no_data(cuzn):
    agent = make_agent(cuzn)
    agent.ingest([{"row": 10, "column": 10, "spectrum": np.full(162, np.nan)}])

    decision, = agent.suggest(1)

    assert decision.source == "no_data"
    assert (decision.row, decision.column) != (10, 10)
    assert agent.report()["best_value"] is None


def test_a_cholesky_failure_falls_back_and_is_reported(seeded, monkeypatch, caplog):
    model = seeded.model
    train = model._train
    jitters = []

    def fail_once(standardised, warm, jitter):
        jitters.append(jitter)
        if len(jitters) == 1:
            raise NotPSDError("forced: matrix not positive definite")
        return train(standardised, warm, jitter)

    monkeypatch.setattr(model, "_train", fail_once)
    with caplog.at_level(logging.INFO, logger="hae_bluesky.agent"):
        decision, = seeded.suggest(1)

    assert seeded.report()["fallback"] == "jitter"
    assert jitters[1] > jitters[0]
    assert any("forced" in record.getMessage() for record in caplog.records)
    assert decision.source == "policy" and math.isfinite(decision.mean)
    assert (decision.row, decision.column) not in set(SEEDS)


def test_when_every_fit_fails_the_prior_is_predicted(seeded, monkeypatch):
    def always_fail(standardised, warm, jitter):
        raise NotPSDError("forced: matrix not positive definite")

    monkeypatch.setattr(seeded.model, "_train", always_fail)
    decision, = seeded.suggest(1)

    values = [m.value for m in seeded.measurements]
    report = seeded.report()
    assert report["fallback"] == "prior"
    assert report["training_loss"] is None
    assert decision.mean == pytest.approx(np.mean(values))
    assert decision.std == pytest.approx(np.std(values))
    assert (decision.row, decision.column) not in set(SEEDS)
    json.dumps(report, allow_nan=False)


def test_identical_patches_of_a_constant_image_do_not_stop_the_run(cuzn):
    agent = make_agent(cuzn, haadf=np.full(cuzn.haadf.shape, 1000.0))
    measure(agent, cuzn, SEEDS)

    decision, = agent.suggest(1)
    measure(agent, cuzn, [(decision.row, decision.column)])
    second, = agent.suggest(1)

    embeddings = agent.embeddings()
    assert np.ptp(embeddings, axis=0) == pytest.approx(0.0, abs=1e-6)
    for choice in (decision, second):
        assert choice.source == "policy"
        assert math.isfinite(choice.mean) and math.isfinite(choice.std)
    assert (second.row, second.column) not in set(SEEDS) | {(decision.row, decision.column)}


# ---------------------------------------------------------- operator changes


def test_policy_change_applies_at_the_next_suggest(seeded):
    before, = seeded.suggest(1)

    change = seeded.set_policy({"kind": "ucb", "beta": 3.0})

    assert change == {"parameter": "policy", "before": {"kind": "ei", "xi": 0.01},
                      "after": {"kind": "ucb", "beta": 3.0}}
    assert seeded.policy.kind == "ei" and seeded.has_pending_changes()
    after, = seeded.suggest(1)
    assert before.policy["kind"] == "ei"
    assert after.policy == {"kind": "ucb", "beta": 3.0}
    assert seeded.report()["policy"] == {"kind": "ucb", "beta": 3.0}
    assert not seeded.has_pending_changes()


def test_a_bad_policy_request_changes_nothing(seeded):
    with pytest.raises(ValueError, match="unknown policy kind"):
        seeded.set_policy({"kind": "greedy"})

    assert not seeded.has_pending_changes()
    assert seeded.suggest(1)[0].policy == {"kind": "ei", "xi": 0.01}


def test_policy_change_from_another_thread_during_a_fit_switches_once(seeded, cuzn,
                                                                      monkeypatch):
    decisions: list[Decision] = []
    errors: list[BaseException] = []
    fitting, release = threading.Event(), threading.Event()
    fit = seeded.model.fit

    def held_fit(*args, **kwargs):
        if len(decisions) == 2:
            fitting.set()
            release.wait(60)
        return fit(*args, **kwargs)

    def experiment():
        try:
            for _ in range(6):
                decision, = seeded.suggest(1)
                decisions.append(decision)
                measure(seeded, cuzn, [(decision.row, decision.column)])
        except BaseException as error:  # handed to the test thread
            errors.append(error)
            fitting.set()

    monkeypatch.setattr(seeded.model, "fit", held_fit)
    loop = threading.Thread(target=experiment)
    loop.start()
    assert fitting.wait(60)
    change = seeded.set_policy({"kind": "mu"})
    release.set()
    loop.join(120)

    assert not loop.is_alive() and errors == []
    assert change["after"] == {"kind": "mu"}
    kinds = [decision.policy["kind"] for decision in decisions]
    assert kinds == ["ei"] * 3 + ["mu"] * 3


def test_scalarizer_change_rescalarises_the_measured_spectra(seeded, cuzn):
    seeded.suggest(1)
    copper = [m.value for m in seeded.measurements]

    change = seeded.set_scalarizer(ZN_BAND)
    assert [m.value for m in seeded.measurements] == copper
    seeded.suggest(1)

    zinc = scalarizer_from_spec(ZN_BAND)
    expected = [zinc(cuzn.spectra[r, c], cuzn.energy_axis) for r, c in SEEDS]
    assert change["after"] == {"kind": "band_integral", "window": [1020.0, 1100.0]}
    assert [m.value for m in seeded.measurements] == pytest.approx(expected)
    assert seeded.report()["scalarizer"] == change["after"]
    assert seeded.report()["best_value"] == pytest.approx(max(expected))
    assert seeded.model.target_mean == pytest.approx(np.mean(expected))


def test_scalarizer_change_is_refused_for_values_without_spectra(cuzn):
    agent = make_agent(cuzn)
    agent.ingest([{"row": 10, "column": 10, "value": 3.0}])

    with pytest.raises(ValueError, match="1 measurement\\(s\\) were given as values"):
        agent.set_scalarizer(ZN_BAND)
    assert not agent.has_pending_changes()


def test_scalarizer_change_outside_the_energy_axis_is_refused(seeded):
    with pytest.raises(ValueError, match="outside the spectrometer range"):
        seeded.set_scalarizer({"kind": "band_integral", "window": [2100, 2200]})
    assert not seeded.has_pending_changes()


def test_patch_size_change_rebuilds_patches_and_is_off_policy_on_that_step(seeded, cuzn):
    seeded.suggest(1)

    change = seeded.set_patch_size(9)
    assert seeded.patch_size == 5
    decision, = seeded.suggest(1)
    report = seeded.report()

    assert change == {"parameter": "patch_size", "before": 5, "after": 9}
    assert (report["patch_size"], report["off_policy"]) == (9, True)
    assert len(seeded.patches) == (50 - 8) * (40 - 8)
    assert seeded.patches.values.shape[1:] == (9, 9)
    assert seeded.model.n_features == 81
    assert seeded.model.state_dict()["train_index"].size == 4
    assert seeded.patches.index_of(decision.row, decision.column) == decision.patch_index
    assert (decision.row, decision.column) not in set(SEEDS)

    measure(seeded, cuzn, [(decision.row, decision.column)])
    seeded.suggest(1)
    assert seeded.report()["off_policy"] is False


@pytest.mark.parametrize("size", [0, -3, 2.5, 41, "five", None])
def test_patch_size_that_cannot_work_is_refused(seeded, size):
    with pytest.raises(ValueError, match="patch size"):
        seeded.set_patch_size(size)
    assert not seeded.has_pending_changes()


def test_point_of_interest_is_measured_first(seeded, cuzn):
    size = cuzn.pixel_size_nm
    point = [20 * size, 25 * size]

    seeded.add_points_of_interest([point])
    assert seeded.report()["points_of_interest"] == [pytest.approx(point)]
    first, second = seeded.suggest(2)

    assert first.source == "point_of_interest"
    assert (first.row, first.column) == (25, 20)
    assert math.isnan(first.acquisition_value)
    assert second.source == "policy"
    assert (second.row, second.column) != (25, 20)
    assert seeded.report()["points_of_interest"] == []


def test_point_of_interest_already_measured_is_skipped(seeded, cuzn):
    size = cuzn.pixel_size_nm
    row, column = SEEDS[0]

    seeded.add_points_of_interest([[column * size, row * size]])
    decision, = seeded.suggest(1)

    assert decision.source == "policy"
    assert (decision.row, decision.column) not in set(SEEDS)


@pytest.mark.parametrize("points, message", [
    ([[5.0, 5.0], [1000.0, 5.0]], "outside the field of view"),
    ([[5.0, 5.0], [-2.0, 5.0]], "outside the field of view"),
    ([[5.0, math.inf]], "not finite"),
    ([[5.0]], "list of \\(x_nm, y_nm\\) pairs"),
    ([], "no points of interest"),
])
def test_point_of_interest_off_the_field_is_refused_and_nothing_queued(seeded, points,
                                                                       message):
    with pytest.raises(ValueError, match=message):
        seeded.add_points_of_interest(points)

    assert not seeded.has_pending_changes()
    assert seeded.report()["points_of_interest"] == []


# ----------------------------------------------------------------------- state


@pytest.mark.parametrize("policy, moment", [
    ("ei", "after_suggest"),
    ("ei", "after_ingest"),
    ("thompson", "after_ingest"),
])
def test_state_round_trip_gives_the_same_next_suggestion(cuzn, policy, moment):
    agent = make_agent(cuzn, policy=policy)
    measure(agent, cuzn, SEEDS)
    decision, = agent.suggest(1)
    if moment == "after_ingest":
        measure(agent, cuzn, [(decision.row, decision.column)])

    restored = DKLAgent.from_state(agent.state_dict())

    assert [m.summary() for m in restored.measurements] == [
        m.summary() for m in agent.measurements]
    assert as_text(restored.suggest(2)) == as_text(agent.suggest(2))


def test_state_round_trip_keeps_pending_operator_changes(seeded, cuzn):
    seeded.suggest(1)
    seeded.set_policy({"kind": "ucb", "beta": 1.0})
    seeded.set_scalarizer(ZN_BAND)
    seeded.set_patch_size(7)
    seeded.add_points_of_interest([[10 * cuzn.pixel_size_nm, 12 * cuzn.pixel_size_nm]])

    restored = DKLAgent.from_state(seeded.state_dict())

    assert as_text(restored.suggest(2)) == as_text(seeded.suggest(2))
    assert restored.report()["scalarizer"] == seeded.report()["scalarizer"]
    assert [m.value for m in restored.measurements] == [m.value for m in seeded.measurements]
    assert restored.patch_size == seeded.patch_size == 7


def test_from_state_with_a_scalarizer_override_rescalarises(seeded, cuzn):
    seeded.suggest(1)

    restored = DKLAgent.from_state(seeded.state_dict(), scalarizer=ZN_BAND)
    decision, = restored.suggest(1)

    zinc = scalarizer_from_spec(ZN_BAND)
    expected = [zinc(cuzn.spectra[r, c], cuzn.energy_axis) for r, c in SEEDS]
    assert [m.value for m in restored.measurements] == pytest.approx(expected)
    assert restored.report()["scalarizer"] == zinc.to_spec()
    assert restored.report()["best_value"] == pytest.approx(max(expected))
    assert restored.model.state_dict()["train_targets"].mean() == pytest.approx(0.0, abs=1e-6)
    assert restored.model.target_mean == pytest.approx(np.mean(expected))
    assert (decision.row, decision.column) not in set(SEEDS)


def test_from_state_with_a_policy_override_uses_it(seeded):
    seeded.suggest(1)

    restored = DKLAgent.from_state(seeded.state_dict(), policy={"kind": "mu"})
    decision, = restored.suggest(1)

    assert decision.policy == {"kind": "mu"}
    assert restored.step == 4


def test_from_state_refuses_another_version(seeded):
    state = seeded.state_dict()
    state["version"] = 99

    with pytest.raises(ValueError, match="agent state version 99"):
        DKLAgent.from_state(state)
