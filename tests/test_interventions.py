"""Intervention functions on an experiment control, without a queueserver."""

from __future__ import annotations

import json
import math

import pytest

from hae_bluesky.data import scalarizer_preset
from hae_bluesky.interventions import CHANGING_FUNCTIONS, READING_FUNCTIONS, Interventions
from hae_bluesky.plans import ExperimentControl, NoExperimentRunning


class FakeAgent:
    """Stands in for the agent: remembers requests, refuses a few the agent would."""

    def __init__(self) -> None:
        self.policy = {"kind": "ei", "xi": 0.01}
        self.patch_size = 5
        self.points: list[tuple[float, float]] = []

    def set_policy(self, spec):
        if spec["kind"] not in ("ei", "ucb", "mu", "pi", "thompson", "random"):
            raise ValueError(f"unknown policy kind {spec['kind']!r}")
        before, self.policy = self.policy, spec
        return {"parameter": "policy", "before": before, "after": spec}

    def set_scalarizer(self, spec):
        return {"parameter": "scalarizer", "before": None, "after": spec}

    def set_patch_size(self, size):
        before, self.patch_size = self.patch_size, size
        return {"parameter": "patch_size", "before": before, "after": size}

    def add_points_of_interest(self, points):
        self.points.extend(points)
        return {"parameter": "points_of_interest", "before": [], "after": points}

    def report(self):
        return {"step": 3, "policy": self.policy, "best_value": math.nan,
                "patch_size": self.patch_size}


@pytest.fixture
def agent():
    return FakeAgent()


@pytest.fixture
def control(agent):
    control = ExperimentControl()
    control.attach(agent)
    return control


@pytest.fixture
def interventions(control):
    return Interventions(control)


def test_policy_change_reaches_the_agent_and_records_who_asked(interventions, agent, control):
    record = interventions.set_policy({"kind": "ucb", "beta": 2.0}, user="ada",
                                      group="operator")
    assert agent.policy == {"kind": "ucb", "beta": 2.0}
    assert record["before"] == {"kind": "ei", "xi": 0.01}
    assert record["after"] == {"kind": "ucb", "beta": 2.0}
    assert (record["user"], record["group"], record["accepted"]) == ("ada", "operator", True)
    (logged,) = control.drain()
    assert (logged.parameter, logged.user) == ("policy", "ada")


def test_policy_given_as_a_kind_name_becomes_a_spec(interventions, agent):
    interventions.set_policy("mu")
    assert agent.policy == {"kind": "mu"}


def test_policy_parameters_given_as_keywords_join_the_spec(interventions, agent):
    interventions.set_policy("ucb", beta=3, user="ada")
    assert agent.policy == {"kind": "ucb", "beta": 3}


def test_policy_keywords_override_the_same_keys_of_a_spec(interventions, agent):
    interventions.set_policy({"kind": "ei", "xi": 0.01}, xi=0.5, travel_weight=0.2)
    assert agent.policy == {"kind": "ei", "xi": 0.5, "travel_weight": 0.2}


def test_policy_that_is_neither_name_nor_spec_is_refused_and_logged(interventions, agent,
                                                                    control):
    with pytest.raises(ValueError, match="a policy is a kind name or a dict"):
        interventions.set_policy(42, user="ada")
    assert agent.policy == {"kind": "ei", "xi": 0.01}
    (logged,) = control.drain()
    assert logged.accepted is False
    assert "a policy is a kind name" in logged.message


def test_agent_refusal_comes_back_to_the_caller(interventions, agent, control):
    with pytest.raises(ValueError, match="unknown policy kind 'greedy'"):
        interventions.set_policy({"kind": "greedy"})
    assert agent.policy == {"kind": "ei", "xi": 0.01}
    assert [record.accepted for record in control.drain()] == [False]


def test_scalarizer_preset_name_becomes_its_spec(interventions):
    record = interventions.set_scalarizer("cu_l23")
    assert record["after"] == scalarizer_preset("cu_l23")


def test_unknown_scalarizer_preset_is_refused(interventions):
    with pytest.raises(ValueError, match="no scalarizer preset 'cu_k'"):
        interventions.set_scalarizer("cu_k")


@pytest.mark.parametrize("window", [[1000, 930], [930], ["930", "1000"], [930, math.inf]])
def test_malformed_energy_window_is_refused(interventions, window):
    with pytest.raises(ValueError, match="window"):
        interventions.set_scalarizer({"kind": "band_integral", "window": window})


def test_window_numbers_are_passed_as_floats(interventions):
    record = interventions.set_scalarizer({"kind": "band_integral", "window": [930, 1000]})
    assert record["after"] == {"kind": "band_integral", "window": [930.0, 1000.0]}


@pytest.mark.parametrize("size", [2.5, True, "7", None])
def test_patch_size_must_be_a_whole_number(interventions, agent, size):
    with pytest.raises(ValueError, match="whole number of pixels"):
        interventions.set_patch_size(size)
    assert agent.patch_size == 5


def test_patch_size_given_as_whole_float_is_accepted(interventions, agent):
    interventions.set_patch_size(7.0)
    assert agent.patch_size == 7 and isinstance(agent.patch_size, int)


@pytest.mark.parametrize("points", [[], [[1.0]], [[1.0, "a"]], "1,2", [[1.0, math.nan]]])
def test_malformed_points_of_interest_are_refused(interventions, agent, points):
    with pytest.raises(ValueError, match="points of interest|position"):
        interventions.add_points_of_interest(points)
    assert agent.points == []


def test_points_of_interest_reach_the_agent_in_nm(interventions, agent):
    interventions.add_points_of_interest([[3, 4.5], [10.0, 2.0]])
    assert agent.points == [(3.0, 4.5), (10.0, 2.0)]


def test_stop_request_names_the_user_in_the_reason(interventions, control):
    record = interventions.stop_experiment("sample drifted", user="ada", group="operator")
    assert control.stop_reason == "sample drifted by ada"
    assert (record["parameter"], record["after"]) == ("stop", "sample drifted")


def test_changes_without_a_running_experiment_raise(control):
    control.detach()
    interventions = Interventions(control)
    with pytest.raises(NoExperimentRunning, match="cannot change policy"):
        interventions.set_policy("ucb")
    with pytest.raises(NoExperimentRunning, match="nothing to stop"):
        interventions.stop_experiment()


def test_agent_state_is_plain_json_with_nan_as_none(interventions):
    state = interventions.agent_state()
    assert state["running"] is True
    assert state["report"]["best_value"] is None
    assert json.loads(json.dumps(state, allow_nan=False)) == state


def test_agent_state_after_the_experiment_reports_the_last_agent(interventions, control):
    control.detach()
    state = interventions.agent_state()
    assert state["running"] is False
    assert state["report"]["step"] == 3


def test_agent_state_before_any_experiment_has_no_report():
    state = Interventions(ExperimentControl()).agent_state()
    assert state == {"running": False, "stop_reason": None, "report": None}


def test_default_user_and_group_fill_in_when_a_call_names_none(control):
    interventions = Interventions(control, user="console-user", group="console")
    record = interventions.set_patch_size(3)
    assert (record["user"], record["group"]) == ("console-user", "console")
    record = interventions.set_patch_size(4, user="ada", group="operator")
    assert (record["user"], record["group"]) == ("ada", "operator")


def test_functions_cover_every_intervention(interventions):
    functions = interventions.functions()
    assert set(functions) == set(CHANGING_FUNCTIONS + READING_FUNCTIONS)
    assert all(callable(function) for function in functions.values())


@pytest.fixture(scope="module")
def dkl_control(cuzn):
    from hae_bluesky.agent import DKLAgent

    agent = DKLAgent(cuzn.haadf, cuzn.energy_axis, scalarizer_preset("cu_l23"),
                     pixel_size_nm=cuzn.pixel_size_nm, patch_size=5)
    control = ExperimentControl()
    control.attach(agent)
    return control


@pytest.mark.parametrize(("name", "argument", "message"), [
    ("set_policy", {"kind": "greedy"}, "unknown policy kind 'greedy'"),
    ("set_scalarizer", {"kind": "band_integral", "window": [2100, 2200]}, "2100"),
    ("set_patch_size", 0, "patch size"),
    ("set_patch_size", 60, "patch size"),
    ("add_points_of_interest", [[500.0, 1.0]], "field of view"),
])
def test_agent_refuses_what_the_experiment_cannot_do(dkl_control, name, argument, message):
    interventions = Interventions(dkl_control)
    before = dkl_control.agent.report()
    with pytest.raises(ValueError, match=message):
        getattr(interventions, name)(argument, user="ada")
    assert dkl_control.agent.report() == before
    assert not dkl_control.agent.has_pending_changes()
    (logged,) = dkl_control.drain()
    assert (logged.accepted, logged.user) == (False, "ada")


def test_numpy_numbers_are_accepted_as_positions_and_sizes(interventions, agent):
    import numpy as np

    interventions.add_points_of_interest(np.array([[1.0, 2.5]]))
    interventions.add_points_of_interest([[np.float32(3.0), np.int64(4)]])
    interventions.set_patch_size(np.int64(7))
    assert agent.points == [(1.0, 2.5), (3.0, 4.0)]
    assert agent.patch_size == 7 and type(agent.patch_size) is int


def test_policy_and_scalarizer_given_as_json_text_become_specs(interventions, agent):
    interventions.set_policy('{"kind": "ucb", "beta": 3}')
    record = interventions.set_scalarizer('{"kind": "band_integral", "window": [930, 1000]}')
    assert agent.policy == {"kind": "ucb", "beta": 3}
    assert record["after"] == {"kind": "band_integral", "window": [930.0, 1000.0]}


def test_malformed_json_text_is_refused_and_logged(interventions, control):
    with pytest.raises(ValueError, match=r"the scalarizer '\{bad' is not valid JSON"):
        interventions.set_scalarizer("{bad")
    (logged,) = control.drain()
    assert logged.accepted is False and "not valid JSON" in logged.message


def test_preset_name_on_data_without_presets_asks_for_a_spec(control):
    interventions = Interventions(control, dataset="")
    with pytest.raises(ValueError, match="has no scalarizer presets, so 'cu_l23' names "
                                         "nothing; give a spec such as"):
        interventions.set_scalarizer("cu_l23")


# ------------------------------------------- settings refused before a run opens


@pytest.mark.parametrize(("options", "message"), [
    (["--policy", "nonsense"], "unknown policy kind 'nonsense'"),
    (["--patch-size", "0"], "--patch-size must be 1 to 40 pixels for the 50 x 40 HAADF"),
    (["--patch-size", "1000"], "--patch-size must be 1 to 40 pixels"),
    (["--seeds", "0"], "--seeds must be 1 to 1656 (the positions with a whole 5 x 5 patch)"),
    (["--budget", "-1"], "--budget must be 0 or more measurements, got -1"),
    (["--haadf", "haadf.hspy"], "--haadf goes with a file --dataset, not with 'cuzn'"),
])
def test_demo_refuses_bad_settings_before_opening_a_catalog(options, message, tmp_path,
                                                            capsys):
    from hae_bluesky.cli import main

    status = main(["demo", "--no-progress", "--catalog", str(tmp_path / "catalog"),
                   "--figure", str(tmp_path / "demo.png"), *options])
    assert status == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "catalog").exists()
