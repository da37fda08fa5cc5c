"""Acquisition functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from hae_bluesky.agent.acquisition import (
    expected_improvement,
    log_expected_improvement,
    log_probability_of_improvement,
    maximum_uncertainty,
    probability_of_improvement,
    random_scores,
    thompson_sample,
    upper_confidence_bound,
)


def test_expected_improvement_matches_the_closed_form():
    # mu = 1, sigma = 0.5, y_best = 0.5, xi = 0.1: gain 0.4, z = 0.8.
    expected = 0.4 * norm.cdf(0.8) + 0.5 * norm.pdf(0.8)

    value = expected_improvement(np.array([1.0]), np.array([0.5]), best=0.5, xi=0.1)

    assert value == pytest.approx([expected], rel=1e-12)
    assert value[0] == pytest.approx(0.4 * 0.7881446014166034 + 0.5 * 0.28969155276148273)


def test_expected_improvement_below_the_best_value_is_small_but_positive():
    # mu = 0, sigma = 1, y_best = 1, xi = 0: z = -1.
    expected = -1.0 * norm.cdf(-1.0) + 1.0 * norm.pdf(-1.0)

    value = expected_improvement(np.array([0.0]), np.array([1.0]), best=1.0, xi=0.0)

    assert value == pytest.approx([expected], rel=1e-12)
    assert 0 < value[0] < 0.1


def test_expected_improvement_with_zero_sigma_is_the_positive_part_of_the_gain():
    mean = np.array([1.0, 0.2, 0.6])
    std = np.zeros(3)

    value = expected_improvement(mean, std, best=0.5, xi=0.1)

    # gains 0.4, -0.4 and 0.0
    assert value == pytest.approx([0.4, 0.0, 0.0], abs=1e-15)


@pytest.mark.parametrize("best", [-2.0, 0.0, 0.5, 3.0, 10.0, 30.0])
def test_log_expected_improvement_is_the_log_of_expected_improvement(best):
    mean, std = np.array([0.2, 0.0]), np.array([1.5, 1.0])

    value = log_expected_improvement(mean, std, best=best, xi=0.1)

    assert value == pytest.approx(np.log(expected_improvement(mean, std, best, 0.1)),
                                  rel=1e-10)


def test_log_expected_improvement_matches_the_tail_series_where_ei_underflows():
    # z = -50: EI underflows to 0; h(z) = phi(z) / z^2 * (1 - 3 / z^2 + 15 / z^4 - ...).
    z = 50.0
    series = (-0.5 * z * z - 0.5 * math.log(2 * math.pi) - 2 * math.log(z)
              + math.log(1 - 3 / z**2 + 15 / z**4 - 105 / z**6))

    value = log_expected_improvement(np.array([0.0]), np.array([1.0]), best=z, xi=0.0)

    assert expected_improvement(np.array([0.0]), np.array([1.0]), best=z, xi=0.0)[0] == 0.0
    assert value[0] == pytest.approx(series, rel=1e-12)


def test_log_expected_improvement_keeps_the_order_where_ei_is_zero_everywhere():
    # Three candidates 40, 45 and 60 standard deviations below the best value.
    mean, std = np.array([0.0, -5.0, -20.0]), np.ones(3)

    value = log_expected_improvement(mean, std, best=40.0, xi=0.0)

    assert np.all(expected_improvement(mean, std, best=40.0, xi=0.0) == 0.0)
    assert np.all(np.isfinite(value)) and value[0] > value[1] > value[2]


def test_log_expected_improvement_with_zero_sigma_is_the_log_of_the_gain():
    value = log_expected_improvement(np.array([1.0, 0.2]), np.zeros(2), best=0.5, xi=0.1)

    assert value[0] == pytest.approx(math.log(0.4))
    assert value[1] == -np.inf


def test_log_probability_of_improvement_is_log_phi_and_finite_in_the_tail():
    mean, std = np.array([1.0, 0.0, 0.0]), np.array([0.5, 1.0, 1.0])

    value = log_probability_of_improvement(mean, std, best=np.array(0.5), xi=0.1)
    tail = log_probability_of_improvement(np.array([0.0]), np.array([1.0]), best=60.0, xi=0.0)

    assert value[:2] == pytest.approx(np.log([norm.cdf(0.8), norm.cdf(-0.6)]))
    assert tail[0] == pytest.approx(norm.logcdf(-60.0), rel=1e-12)


def test_expected_improvement_mixes_zero_and_positive_sigma_element_by_element():
    mean = np.array([1.0, 1.0])
    std = np.array([0.0, 0.5])

    value = expected_improvement(mean, std, best=0.5, xi=0.1)

    assert value[0] == pytest.approx(0.4)
    assert value[1] == pytest.approx(0.4 * norm.cdf(0.8) + 0.5 * norm.pdf(0.8))


def test_expected_improvement_is_never_negative_far_below_the_best_value():
    mean = -np.linspace(0.0, 40.0, 401)

    value = expected_improvement(mean, np.ones_like(mean), best=0.0, xi=0.0)

    assert np.all(value >= 0.0)
    assert value[-1] < 1e-100


def test_expected_improvement_grows_with_sigma_at_a_fixed_mean():
    std = np.array([0.1, 0.5, 1.0, 2.0])

    value = expected_improvement(np.zeros(4), std, best=0.0, xi=0.01)

    assert np.all(np.diff(value) > 0)


def test_expected_improvement_larger_xi_asks_for_more():
    mean, std = np.array([1.0]), np.array([0.5])

    small = expected_improvement(mean, std, best=0.5, xi=0.0)
    large = expected_improvement(mean, std, best=0.5, xi=0.3)

    assert large[0] < small[0]
    assert large[0] == pytest.approx(0.2 * norm.cdf(0.4) + 0.5 * norm.pdf(0.4))


def test_expected_improvement_default_xi_is_one_hundredth():
    mean, std = np.array([1.0]), np.array([0.5])

    value = expected_improvement(mean, std, best=0.5)

    gain = 1.0 - 0.5 - 0.01
    assert value[0] == pytest.approx(gain * norm.cdf(gain / 0.5) + 0.5 * norm.pdf(gain / 0.5))


def test_probability_of_improvement_matches_the_normal_cdf():
    mean = np.array([1.0, 0.0])
    std = np.array([0.5, 2.0])

    value = probability_of_improvement(mean, std, best=0.5, xi=0.1)

    assert value == pytest.approx([norm.cdf(0.8), norm.cdf(-0.3)], rel=1e-12)


def test_probability_of_improvement_with_zero_sigma_is_one_only_above_the_margin():
    mean = np.array([1.0, 0.2, 0.6])

    value = probability_of_improvement(mean, np.zeros(3), best=0.5, xi=0.1)

    # gains 0.4 (> 0), -0.4 and 0.0 (not > 0)
    assert value.tolist() == [1.0, 0.0, 0.0]


def test_upper_confidence_bound_is_mean_plus_beta_sigma():
    mean = np.array([0.0, 1.0, -2.0])
    std = np.array([1.0, 0.5, 0.25])

    value = upper_confidence_bound(mean, std, beta=4.0)

    assert value == pytest.approx([4.0, 3.0, -1.0])


def test_upper_confidence_bound_does_not_take_the_square_root_of_beta():
    value = upper_confidence_bound(np.array([0.0]), np.array([1.0]), beta=4.0)

    with_square_root = 0.0 + math.sqrt(4.0) * 1.0
    assert value[0] == pytest.approx(4.0)
    assert value[0] != pytest.approx(with_square_root)


def test_upper_confidence_bound_default_beta_is_two():
    value = upper_confidence_bound(np.array([0.0, 1.0]), np.array([1.0, 0.5]))

    assert value == pytest.approx([2.0, 2.0])


def test_upper_confidence_bound_with_zero_beta_is_the_mean():
    mean = np.array([0.3, -0.7])

    value = upper_confidence_bound(mean, np.array([5.0, 9.0]), beta=0.0)

    assert value == pytest.approx(mean)


def test_maximum_uncertainty_is_sigma_as_a_copy():
    std = np.array([0.1, 0.7, 0.3])

    value = maximum_uncertainty(std)
    value[0] = 99.0

    assert value[1:].tolist() == [0.7, 0.3]
    assert std[0] == 0.1
    assert int(np.argmax(maximum_uncertainty(std))) == 1


def test_thompson_sample_scores_are_the_sample_itself_as_a_copy():
    sample = np.array([0.2, -1.0, 3.5])

    value = thompson_sample(sample)
    value[2] = 0.0

    assert value[:2].tolist() == [0.2, -1.0]
    assert sample[2] == 3.5


def test_random_scores_are_uniform_draws_of_the_given_generator():
    expected = np.random.default_rng(7).random(5)

    value = random_scores(5, np.random.default_rng(7))

    assert value.tolist() == expected.tolist()
    assert np.all((value >= 0) & (value < 1))


def test_random_scores_differ_between_seeds_and_repeat_with_the_same_seed():
    first = random_scores(100, np.random.default_rng(1))
    again = random_scores(100, np.random.default_rng(1))
    other = random_scores(100, np.random.default_rng(2))

    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_random_scores_argmax_covers_every_candidate():
    rng = np.random.default_rng(0)

    winners = {int(np.argmax(random_scores(4, rng))) for _ in range(200)}

    assert winners == {0, 1, 2, 3}
