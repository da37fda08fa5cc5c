"""Policies: validation of specs, defaults, aliases, round trips and the modifiers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from hae_bluesky.agent import MODIFIERS, POLICY_KINDS, Policy, policy_from_spec

# Three candidates on a line, 5 nm apart, in a field of view whose diagonal is 10 nm.
LINE_NM = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0]])
ALL = np.ones(3, dtype=bool)
NOWHERE = np.empty((0, 2))


# ------------------------------------------------------------------ validation


def test_unknown_kind_is_refused_with_the_accepted_kinds():
    with pytest.raises(ValueError, match=r"unknown policy kind 'greedy'.*ei, ucb, mu"):
        policy_from_spec({"kind": "greedy"})


def test_missing_kind_is_refused():
    with pytest.raises(ValueError, match="unknown policy kind None"):
        policy_from_spec({"xi": 0.1})


def test_unknown_parameter_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"'ei' has no parameter\(s\) beta; it accepts xi"):
        policy_from_spec({"kind": "ei", "beta": 2.0})


def test_every_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="has no parameter\\(s\\) alpha, gamma"):
        policy_from_spec({"kind": "mu", "gamma": 1, "alpha": 2})


@pytest.mark.parametrize("value", [-0.1, -1e-12, float("nan"), float("inf"), -float("inf")])
def test_negative_or_non_finite_parameter_is_refused(value):
    with pytest.raises(ValueError, match="policy parameter beta must be finite and >= 0"):
        policy_from_spec({"kind": "ucb", "beta": value})


@pytest.mark.parametrize("value", ["large", None, [1.0], {"x": 1}])
def test_parameter_that_is_not_a_number_is_refused(value):
    with pytest.raises(ValueError, match="policy parameter xi must be a number"):
        policy_from_spec({"kind": "ei", "xi": value})


def test_negative_modifier_is_refused():
    with pytest.raises(ValueError, match="travel_weight must be finite and >= 0, got -0.5"):
        policy_from_spec({"kind": "mu", "travel_weight": -0.5})


@pytest.mark.parametrize("spec", [42, 1.5, ["ei"], None])
def test_spec_that_is_neither_dict_nor_string_is_refused(spec):
    with pytest.raises(ValueError, match="a policy is a dict like"):
        policy_from_spec(spec)


def test_validation_does_not_change_the_callers_spec():
    spec = {"kind": "UCB", "beta": 3}

    policy_from_spec(spec)

    assert spec == {"kind": "UCB", "beta": 3}


# -------------------------------------------------------------------- defaults


@pytest.mark.parametrize("kind", sorted(POLICY_KINDS))
def test_missing_parameters_take_their_defaults(kind):
    policy = policy_from_spec({"kind": kind})

    assert policy.kind == kind
    assert policy.parameters == POLICY_KINDS[kind]
    assert (policy.travel_weight, policy.exclusion_radius_nm, policy.exclusion_weight) == (
        0.0, 0.0, 0.0)
    assert not policy.modified


def test_default_parameters_are_those_of_the_design():
    assert POLICY_KINDS["ei"] == {"xi": 0.01}
    assert POLICY_KINDS["pi"] == {"xi": 0.01}
    assert POLICY_KINDS["ucb"] == {"beta": 2.0}
    assert MODIFIERS == {"travel_weight": 0.0, "exclusion_radius_nm": 0.0,
                         "exclusion_weight": 0.0}


def test_a_bare_string_is_a_kind_with_default_parameters():
    assert policy_from_spec("ucb") == Policy("ucb", {"beta": 2.0})


def test_integer_parameters_become_floats():
    policy = policy_from_spec({"kind": "ucb", "beta": 3})

    assert policy.parameters == {"beta": 3.0}
    assert isinstance(policy.parameters["beta"], float)


def test_a_policy_passes_through_unchanged():
    policy = Policy("mu", {}, travel_weight=0.2)

    assert policy_from_spec(policy) is policy


# --------------------------------------------------------------------- aliases


@pytest.mark.parametrize("alias, kind", [
    ("expected_improvement", "ei"),
    ("upper_confidence_bound", "ucb"),
    ("maximum_uncertainty", "mu"),
    ("max_uncertainty", "mu"),
    ("probability_of_improvement", "pi"),
    ("ts", "thompson"),
    ("  UCB ", "ucb"),
    ("Thompson", "thompson"),
])
def test_aliases_and_spellings_name_the_same_kind(alias, kind):
    assert policy_from_spec({"kind": alias}).kind == kind


def test_alias_keeps_its_parameters():
    policy = policy_from_spec({"kind": "upper_confidence_bound", "beta": 0.5})

    assert policy == Policy("ucb", {"beta": 0.5})


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("spec", [
    {"kind": "ei", "xi": 0.05},
    {"kind": "ucb", "beta": 2.0, "travel_weight": 0.2},
    {"kind": "mu", "exclusion_radius_nm": 2.0, "exclusion_weight": 0.5},
    {"kind": "pi", "xi": 0.0},
    {"kind": "thompson"},
    {"kind": "random", "travel_weight": 1.0, "exclusion_radius_nm": 3.0,
     "exclusion_weight": 0.25},
])
def test_spec_round_trip_rebuilds_the_same_policy(spec):
    policy = policy_from_spec(spec)

    assert policy.to_spec() == spec
    assert policy_from_spec(policy.to_spec()) == policy


def test_to_spec_leaves_out_modifiers_that_are_off():
    spec = policy_from_spec({"kind": "ucb", "beta": 1.0, "travel_weight": 0.0}).to_spec()

    assert spec == {"kind": "ucb", "beta": 1.0}


def test_describe_is_one_line_with_the_parameters():
    assert policy_from_spec({"kind": "ucb", "beta": 2}).describe() == "ucb(beta=2)"
    assert policy_from_spec("mu").describe() == "mu()"
    assert policy_from_spec({"kind": "ei", "travel_weight": 0.25}).describe() == (
        "ei(xi=0.01, travel_weight=0.25)")


def test_exclusion_counts_as_a_modifier_only_with_weight_and_radius():
    assert not policy_from_spec({"kind": "mu", "exclusion_weight": 1.0}).modified
    assert not policy_from_spec({"kind": "mu", "exclusion_radius_nm": 1.0}).modified
    assert policy_from_spec({"kind": "mu", "exclusion_weight": 1.0,
                             "exclusion_radius_nm": 1.0}).modified
    assert policy_from_spec({"kind": "mu", "travel_weight": 0.1}).modified


def test_only_thompson_needs_a_sample_and_only_random_ignores_the_model():
    needs = {kind: (policy_from_spec(kind).needs_sample, policy_from_spec(kind).needs_model)
             for kind in POLICY_KINDS}

    assert needs == {"ei": (False, True), "ucb": (False, True), "mu": (False, True),
                     "pi": (False, True), "thompson": (True, True), "random": (False, False)}


# ----------------------------------------------------------------- acquisition


def test_policy_acquisition_uses_the_kind_and_its_parameters():
    mean, std = np.array([1.0, 0.0]), np.array([0.5, 1.0])
    rng = np.random.default_rng(0)

    ei = policy_from_spec({"kind": "ei", "xi": 0.1}).acquisition(mean, std, 0.5, rng)
    pi = policy_from_spec({"kind": "pi", "xi": 0.1}).acquisition(mean, std, 0.5, rng)
    ucb = policy_from_spec({"kind": "ucb", "beta": 3.0}).acquisition(mean, std, 0.5, rng)
    mu = policy_from_spec("mu").acquisition(mean, std, 0.5, rng)

    assert ei[0] == pytest.approx(np.log(0.4 * norm.cdf(0.8) + 0.5 * norm.pdf(0.8)))
    assert pi == pytest.approx(np.log([norm.cdf(0.8), norm.cdf(-0.6)]))
    assert ucb == pytest.approx([2.5, 3.0])
    assert mu == pytest.approx([0.5, 1.0])


def test_thompson_acquisition_is_the_sample_and_needs_one():
    policy = policy_from_spec("thompson")
    mean, std = np.zeros(3), np.ones(3)
    rng = np.random.default_rng(0)

    values = policy.acquisition(mean, std, 0.0, rng, sample=np.array([0.1, 0.9, 0.4]))

    assert values.tolist() == [0.1, 0.9, 0.4]
    with pytest.raises(ValueError, match="Thompson sampling needs a posterior sample"):
        policy.acquisition(mean, std, 0.0, rng)


def test_random_acquisition_uses_the_given_generator():
    values = policy_from_spec("random").acquisition(np.zeros(4), np.ones(4), 0.0,
                                                    np.random.default_rng(3))

    assert values.tolist() == np.random.default_rng(3).random(4).tolist()


# ---------------------------------------------------------------------- scores


def test_unmodified_scores_are_the_values_and_unavailable_candidates_get_minus_inf():
    policy = policy_from_spec("ucb")
    available = np.array([True, False, True])

    scores = policy.scores(np.array([1.0, 5.0, 0.5]), available, LINE_NM, NOWHERE,
                           None, 10.0)

    assert scores.tolist() == [1.0, -math.inf, 0.5]
    assert int(np.argmax(scores)) == 0


def test_scores_give_minus_inf_everywhere_when_nothing_is_available():
    policy = policy_from_spec({"kind": "mu", "travel_weight": 1.0})

    scores = policy.scores(np.ones(3), np.zeros(3, dtype=bool), LINE_NM, NOWHERE,
                           np.zeros(2), 10.0)

    assert scores.tolist() == [-math.inf] * 3


def test_non_finite_acquisition_values_are_never_chosen():
    policy = policy_from_spec("ei")

    scores = policy.scores(np.array([math.nan, 0.2, math.inf]), ALL, LINE_NM, NOWHERE,
                           None, 10.0)

    assert scores.tolist() == [-math.inf, 0.2, -math.inf]


def test_travel_penalty_moves_the_choice_towards_the_beam():
    values = np.array([1.0, 0.8, 0.0])
    beam = np.array([10.0, 0.0])
    plain = policy_from_spec("mu")
    travel = policy_from_spec({"kind": "mu", "travel_weight": 0.5})

    before = plain.scores(values, ALL, LINE_NM, NOWHERE, beam, 10.0)
    after = travel.scores(values, ALL, LINE_NM, NOWHERE, beam, 10.0)

    # rescaled values 1, 0.8, 0; distances 10, 5, 0 nm over a 10 nm diagonal
    expected = [1.0 - 0.5 * 1.0, 0.8 - 0.5 * 0.5, 0.0 - 0.5 * 0.0]
    assert int(np.argmax(before)) == 0
    assert after == pytest.approx(expected)
    assert int(np.argmax(after)) == 1


def test_travel_penalty_needs_a_beam_position():
    travel = policy_from_spec({"kind": "mu", "travel_weight": 0.5})

    scores = travel.scores(np.array([1.0, 0.8, 0.0]), ALL, LINE_NM, NOWHERE, None, 10.0)

    assert scores == pytest.approx([1.0, 0.8, 0.0])


def test_exclusion_penalty_pushes_the_choice_away_from_measured_positions():
    values = np.array([1.0, 0.8, 0.0])
    measured = np.array([[-1.0, 0.0]])
    exclusion = policy_from_spec({"kind": "ucb", "exclusion_radius_nm": 2.0,
                                  "exclusion_weight": 1.0})

    scores = exclusion.scores(values, ALL, LINE_NM, measured, None, 10.0)

    # nearest measured position 1, 6 and 11 nm away; radius 2 nm
    expected = [1.0 - math.exp(-0.5 * (1 / 2) ** 2),
                0.8 - math.exp(-0.5 * (6 / 2) ** 2),
                0.0 - math.exp(-0.5 * (11 / 2) ** 2)]
    assert scores == pytest.approx(expected)
    assert int(np.argmax(values)) == 0
    assert int(np.argmax(scores)) == 1


def test_exclusion_penalty_uses_the_nearest_of_several_measured_positions():
    measured = np.array([[30.0, 0.0], [5.0, 3.0], [-20.0, 0.0]])
    exclusion = policy_from_spec({"kind": "mu", "exclusion_radius_nm": 3.0,
                                  "exclusion_weight": 0.5})

    scores = exclusion.scores(np.array([0.0, 1.0, 0.5]), ALL, LINE_NM, measured, None, 10.0)

    nearest = np.array([math.hypot(5, 3), 3.0, math.hypot(5, 3)])
    expected = np.array([0.0, 1.0, 0.5]) - 0.5 * np.exp(-0.5 * (nearest / 3.0) ** 2)
    assert scores == pytest.approx(expected)


def test_modified_scores_rescale_over_available_candidates_only():
    values = np.array([100.0, 3.0, 1.0])
    available = np.array([False, True, True])
    travel = policy_from_spec({"kind": "ucb", "travel_weight": 0.1})
    beam = np.array([0.0, 0.0])

    scores = travel.scores(values, available, LINE_NM, NOWHERE, beam, 10.0)

    # rescaled over 3 and 1 only: 1 and 0; travel 5 and 10 nm of 10 nm
    assert scores[0] == -math.inf
    assert scores[1:] == pytest.approx([1.0 - 0.1 * 0.5, 0.0 - 0.1 * 1.0])


def test_modified_scores_of_equal_values_are_decided_by_the_penalty():
    travel = policy_from_spec({"kind": "mu", "travel_weight": 1.0})

    scores = travel.scores(np.full(3, 0.7), ALL, LINE_NM, NOWHERE, np.array([5.0, 0.0]), 10.0)

    assert scores == pytest.approx([-0.5, 0.0, -0.5])
    assert int(np.argmax(scores)) == 1
