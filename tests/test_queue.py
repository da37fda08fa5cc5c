"""The profile under a real RE Manager: permissions, interventions, stop, pause and resume.

One RE Manager (with its own Redis server and an embedded Tiled server of
this process as the catalog) serves the whole module. Two clients send
requests: ``ada`` of the ``operator`` group and ``otto`` of the
``observer`` group.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hae_bluesky.analysis.runs import load_run
from hae_bluesky.catalog import open_catalog
from hae_bluesky.cli import main
from hae_bluesky.commands.queue import InterventionRefused, call_function, connect

pytestmark = pytest.mark.timeout(300)

REPOSITORY = Path(__file__).resolve().parents[1]
PROFILE = REPOSITORY / "profile"
SEEDS = 4
#: Short fits, so a step takes a fraction of a second on two cores.
AGENT_OPTIONS = {"model_settings": {"initial_iterations": 25, "warm_iterations": 5}}
#: Seconds the simulated beam takes to settle: time to intervene between steps.
SETTLE_TIME = "0.4"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def redis_address(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server); the "
                    "queueserver needs it")
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait_for(answers, 10, "Redis")
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    with open_catalog(tmp_path_factory.mktemp("catalog")) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def addresses(redis_address, catalog, tmp_path_factory):
    """Start an RE Manager on the profile, open its environment, give its addresses."""
    control = f"tcp://127.0.0.1:{_free_port()}"
    info = f"tcp://127.0.0.1:{_free_port()}"
    base_uri, _, _ = catalog.server.uri.partition("?")
    environment = {**os.environ, "HAE_TILED_URI": base_uri,
                   "HAE_TILED_API_KEY": catalog.server.api_key, "HAE_DEVICES": "cuzn",
                   "HAE_REAL_TIME": "1", "HAE_SETTLE_TIME": SETTLE_TIME,
                   "HAE_EXPOSURE_TIME": "0.01"}
    environment.pop("HAE_CATALOG_DIR", None)
    log = tmp_path_factory.mktemp("manager") / "re-manager.log"
    command = [
        str(Path(sys.executable).with_name("start-re-manager")),
        "--startup-dir", str(PROFILE / "startup"),
        "--existing-plans-devices", str(PROFILE / "existing_plans_and_devices.yaml"),
        "--update-existing-plans-devices", "NEVER",
        "--user-group-permissions", str(PROFILE / "user_group_permissions.yaml"),
        "--redis-addr", redis_address, "--redis-name-prefix", f"hae_test_{uuid.uuid4().hex}",
        "--zmq-control-addr", control, "--zmq-info-addr", info,
        "--zmq-publish-console", "OFF",
    ]
    with open(log, "w") as output:
        manager_process = subprocess.Popen(command, env=environment, stdout=output,
                                           stderr=subprocess.STDOUT)
    manager = connect(control, user="ada", group="operator")
    try:
        _wait_for(lambda: _answers(manager), 60, "the RE Manager")
        manager.environment_open()
        manager.wait_for_idle(timeout=180)
        if not manager.status()["worker_environment_exists"]:
            pytest.fail(f"the profile did not load; see {log}:\n{log.read_text()[-3000:]}")
        yield control, info
        manager.environment_close()
        manager.wait_for_idle(timeout=60)
    finally:
        manager.close()
        manager_process.terminate()
        try:
            manager_process.wait(30)
        except subprocess.TimeoutExpired:
            manager_process.kill()


def _answers(manager) -> bool:
    try:
        manager.status()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def operator(addresses):
    manager = connect(addresses[0], user="ada", group="operator")
    yield manager
    manager.close()


@pytest.fixture(scope="module")
def observer(addresses):
    manager = connect(addresses[0], user="otto", group="observer")
    yield manager
    manager.close()


def _run_queue(manager, timeout: float = 120) -> dict:
    """Start the queue, wait until it is done, return the last history item."""
    manager.queue_start()
    manager.wait_for_idle(timeout=timeout)
    return manager.history_get()["items"][-1]


def _uid(item: dict) -> str:
    (uid,) = item["result"]["run_uids"]
    return uid


def _start_adaptive(manager, budget: int, seed: int) -> None:
    from bluesky_queueserver_api import BPlan

    manager.item_add(BPlan("adaptive_experiment", scalarizer="cu_l23", n_seeds=SEEDS,
                           budget=budget, seed=seed, agent_options=AGENT_OPTIONS))
    manager.queue_start()
    manager.wait_for_idle_or_running(timeout=30)


def _running_run(catalog, manager, timeout: float = 120):
    """The catalog entry of the run the manager is executing."""
    def uid():
        runs = manager.re_runs("open")["run_list"]
        return runs[0]["uid"] if runs else None

    return _wait_for(uid, timeout, "the run to open")


def _decisions_so_far(catalog, uid: str) -> int:
    decisions = load_run(uid, catalog=catalog, streams=["decisions"]).stream("decisions")
    return len(decisions.get("step", ()))


def _wait_for_decisions(catalog, uid: str, count: int, timeout: float = 120) -> int:
    return _wait_for(lambda: _decisions_so_far(catalog, uid) >= count and count, timeout,
                     f"{count} decisions", poll=0.1)


def _policy_kinds(record) -> list[str]:
    return [json.loads(policy)["kind"] for policy in record.stream("decisions")["policy"]]


# ------------------------------------------------------------------- permissions


def test_observer_may_not_queue_the_adaptive_experiment(observer):
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.comm_base import RequestFailedError

    with pytest.raises(RequestFailedError, match="adaptive_experiment.*not in the list of "
                                                 "allowed plans"):
        observer.item_add(BPlan("adaptive_experiment", scalarizer="cu_l23", budget=2))
    assert observer.status()["items_in_queue"] == 0


def test_observer_may_not_call_an_intervention(observer):
    with pytest.raises(InterventionRefused, match="Function 'set_policy' is not allowed for "
                                                  "users from 'observer' group"):
        call_function(observer, "set_policy", policy="ucb")


def test_observer_runs_a_baseline_into_the_catalog(observer, catalog):
    from bluesky_queueserver_api import BPlan

    observer.item_add(BPlan("grid_experiment", step=10, budget=6))
    item = _run_queue(observer)
    assert item["result"]["exit_status"] == "completed"
    assert (item["user"], item["user_group"]) == ("otto", "observer")
    record = load_run(_uid(item), catalog=catalog)
    assert record.start["plan_name"] == "grid_experiment"
    assert len(record.stream("measurements")["step"]) == 6


# ------------------------------------------------------- a steered experiment


@pytest.fixture(scope="module")
def steered(operator, observer, catalog):
    """An adaptive experiment changed by the operator while it runs.

    After the second decision: policy to UCB; after the fourth: the Zn L2,3
    edge as scalarizer; then two malformed requests, and the observer reads
    the agent's state.
    """
    budget = 9
    _start_adaptive(operator, budget=budget, seed=11)
    uid = _running_run(catalog, operator)
    outcome = {"uid": uid, "budget": budget}

    _wait_for_decisions(catalog, uid, 2)
    outcome["policy"] = call_function(operator, "set_policy",
                                      policy={"kind": "ucb", "beta": 4.0})
    _wait_for_decisions(catalog, uid, 4)
    outcome["scalarizer"] = call_function(operator, "set_scalarizer", scalarizer="zn_l23")
    refusals = {}
    for name, kwargs in {"set_policy": {"policy": "greedy"},
                         "set_scalarizer": {"scalarizer": {"kind": "band_integral",
                                                           "window": [2100, 2200]}}}.items():
        with pytest.raises(InterventionRefused) as refused:
            call_function(operator, name, **kwargs)
        refusals[name] = str(refused.value)
    outcome["refusals"] = refusals
    outcome["state"] = call_function(observer, "agent_state", send_user=False)

    operator.wait_for_idle(timeout=180)
    outcome["item"] = operator.history_get()["items"][-1]
    outcome["record"] = load_run(uid, catalog=catalog)
    return outcome


def _switch_step(kinds: list[str], new: str) -> int:
    first = kinds.index(new)
    assert set(kinds[first:]) == {new}, f"policy went back after the change: {kinds}"
    return first


def test_policy_change_applies_from_its_step_on(steered):
    record = steered["record"]
    interventions = record.stream("interventions")
    accepted = [i for i, parameter in enumerate(interventions["parameter"])
                if parameter == "policy" and interventions["accepted"][i]]
    (index,) = accepted
    requested_at = int(interventions["step"][index])
    kinds = _policy_kinds(record)
    switched = _switch_step(kinds, "ucb")
    assert set(kinds[:switched]) == {"ei"}
    # The plan holds interventions back while the agent decides, so the
    # step written with the intervention is the first step it governs.
    assert switched == requested_at


def test_scalarizer_change_applies_from_its_step_on(steered):
    record = steered["record"]
    scalarizers = [json.loads(spec)["window"] for spec in record.stream("decisions")
                   ["scalarizer"]]
    zn_window = steered["scalarizer"]["after"]["window"]
    first = scalarizers.index(zn_window)
    assert all(window == zn_window for window in scalarizers[first:])
    assert all(window == [930.0, 1000.0] for window in scalarizers[:first])
    assert first >= 2
    interventions = record.stream("interventions")
    (index,) = [i for i, parameter in enumerate(interventions["parameter"])
                if parameter == "scalarizer" and interventions["accepted"][i]]
    assert int(interventions["step"][index]) == first


def test_interventions_stream_records_who_and_what(steered):
    interventions = steered["record"].stream("interventions")
    assert interventions["parameter"].tolist() == ["policy", "scalarizer", "policy",
                                                   "scalarizer"]
    assert interventions["accepted"].tolist() == [True, True, False, False]
    assert set(interventions["user"].tolist()) == {"ada"}
    assert set(interventions["group"].tolist()) == {"operator"}
    assert json.loads(interventions["after"][0]) == {"kind": "ucb", "beta": 4.0}
    assert json.loads(interventions["before"][0])["kind"] == "ei"
    assert "greedy" in interventions["message"][2]


def test_malformed_interventions_are_refused_with_the_reason(steered):
    refusals = steered["refusals"]
    assert "unknown policy kind 'greedy'" in refusals["set_policy"]
    assert "2100" in refusals["set_scalarizer"] and "eV" in refusals["set_scalarizer"]


def test_experiment_finishes_normally_after_refusals(steered):
    record, item = steered["record"], steered["item"]
    assert item["result"]["exit_status"] == "completed"
    assert record.stop["exit_status"] == "success"
    assert record.stop["reason"] == "budget"
    assert len(record.stream("decisions")["step"]) == steered["budget"]


def test_observer_reads_the_agent_state_while_it_runs(steered):
    state = steered["state"]
    assert state["running"] is True
    assert state["report"]["policy"]["kind"] == "ucb"
    assert state["report"]["n_measured"] >= SEEDS


# --------------------------------------------------------- stop, pause, resume


def test_stop_request_ends_the_run_cleanly(operator, catalog):
    _start_adaptive(operator, budget=40, seed=12)
    uid = _running_run(catalog, operator)
    _wait_for_decisions(catalog, uid, 2)
    call_function(operator, "stop_experiment", reason="enough seen")
    operator.wait_for_idle(timeout=120)

    item = operator.history_get()["items"][-1]
    record = load_run(uid, catalog=catalog)
    assert item["result"]["exit_status"] == "completed"
    assert record.stop["exit_status"] == "success"
    assert record.stop["reason"] == "enough seen by ada"
    assert len(record.stream("decisions")["step"]) < 40
    assert record.stream("interventions")["parameter"].tolist()[-1] == "stop"


def test_intervention_without_a_running_experiment_is_refused(operator):
    with pytest.raises(InterventionRefused, match="no adaptive experiment is running"):
        call_function(operator, "set_patch_size", patch_size=3)


def test_pause_and_resume_through_the_manager(operator, catalog):
    budget = 6
    _start_adaptive(operator, budget=budget, seed=13)
    uid = _running_run(catalog, operator)
    _wait_for_decisions(catalog, uid, 1)

    operator.re_pause("deferred")
    operator.wait_for_idle_or_paused(timeout=60)
    status = operator.status()
    assert (status["manager_state"], status["re_state"]) == ("paused", "paused")
    paused_at = _decisions_so_far(catalog, uid)
    time.sleep(1.0)
    assert _decisions_so_far(catalog, uid) == paused_at

    operator.re_resume()
    operator.wait_for_idle(timeout=120)
    item = operator.history_get()["items"][-1]
    record = load_run(uid, catalog=catalog)
    assert item["result"]["exit_status"] == "completed"
    assert record.stop["exit_status"] == "success"
    assert len(record.stream("decisions")["step"]) == budget
    measurements = record.stream("measurements")
    pixels = set(zip(measurements["row"].tolist(), measurements["column"].tolist(),
                     strict=True))
    assert len(pixels) == len(measurements["row"]) == SEEDS + budget


# ------------------------------------------------------------ operator commands


def test_state_command_reports_manager_and_agent(addresses, capsys):
    status = main(["queue", "--address", addresses[0], "--user", "otto", "--group",
                   "observer", "state"])
    state = json.loads(capsys.readouterr().out)
    assert status == 0
    assert state["manager"]["manager_state"] == "idle"
    assert state["agent"]["running"] is False
    assert state["agent"]["report"]["n_measured"] > 0


def test_refused_command_exits_with_the_reason(addresses, capsys):
    status = main(["queue", "--address", addresses[0], "--user", "otto", "--group",
                   "observer", "set-policy", "ucb", "beta=2"])
    assert status == 1
    assert "'set_policy' is not allowed for users from 'observer'" in capsys.readouterr().err


# ------------------------------------------------------------------ bad input


def test_plan_with_bad_settings_fails_before_a_run_opens(operator, addresses, capsys):
    from bluesky_queueserver_api import BPlan

    operator.item_add(BPlan("adaptive_experiment", scalarizer="cu_l23", policy="greedy",
                            n_seeds=2, budget=2))
    try:
        item = _run_queue(operator)
        assert main(["queue", "--address", addresses[0], "state"]) == 0
        last = json.loads(capsys.readouterr().out)["last_item"]
    finally:
        operator.queue_clear()
    assert item["result"]["exit_status"] == "failed"
    assert item["result"]["run_uids"] == []
    assert "unknown policy kind 'greedy'" in last["message"]
    assert "back at the front of the queue" in last["note"]
    assert "'hae queue remove' drops it" in last["note"]


# ------------------------------------------------------------- queue editing


def _queue_grids(manager, count: int) -> list[str]:
    """Queue ``count`` grid experiments without starting them; return their item uids."""
    from bluesky_queueserver_api import BPlan

    return [manager.item_add(BPlan("grid_experiment", step=10, budget=1 + i))["item"]
            ["item_uid"] for i in range(count)]


def _queued_uids(manager) -> list[str]:
    return [item["item_uid"] for item in manager.queue_get()["items"]]


def test_remove_command_drops_the_front_item(operator, addresses, capsys):
    uids = _queue_grids(operator, 2)
    try:
        status = main(["queue", "--address", addresses[0], "remove"])
        removed = json.loads(capsys.readouterr().out)
        remaining = _queued_uids(operator)
    finally:
        operator.queue_clear()
    assert status == 0
    assert removed["removed"]["item_uid"] == uids[0]
    assert removed["removed"]["kwargs"] == {"step": 10, "budget": 1}
    assert removed["queue_size"] == 1
    assert remaining == uids[1:]


def test_remove_command_drops_the_item_with_the_uid(operator, addresses, capsys):
    uids = _queue_grids(operator, 3)
    try:
        status = main(["queue", "--address", addresses[0], "remove", "--uid", uids[1]])
        removed = json.loads(capsys.readouterr().out)
        remaining = _queued_uids(operator)
    finally:
        operator.queue_clear()
    assert status == 0
    assert removed["removed"]["item_uid"] == uids[1]
    assert remaining == [uids[0], uids[2]]


def test_remove_command_on_an_empty_queue_says_it_is_empty(operator, addresses, capsys):
    assert operator.status()["items_in_queue"] == 0

    assert main(["queue", "--address", addresses[0], "remove"]) == 1
    assert capsys.readouterr().err == "hae queue: Failed to remove an item: Queue is empty\n"


def test_clear_command_empties_the_queue(operator, addresses, capsys):
    _queue_grids(operator, 2)
    try:
        status = main(["queue", "--address", addresses[0], "clear"])
        summary = json.loads(capsys.readouterr().out)
        remaining = _queued_uids(operator)
    finally:
        operator.queue_clear()
    assert status == 0
    assert summary["items_in_queue"] == 0
    assert remaining == []


def test_unknown_group_is_told_the_known_groups(addresses, capsys):
    status = main(["queue", "--address", addresses[0], "--user", "ada", "--group",
                   "wizards", "set-policy", "ucb"])
    assert status == 1
    assert "Unknown user group: 'wizards'; give --group (or $HAE_QUEUE_GROUP) as one of: " \
           "observer, operator" in capsys.readouterr().err


def test_no_manager_at_the_address_fails_fast_saying_how_to_start_one(capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    status = main(["queue", "--address", address, "state"])
    assert status == 1
    assert time.monotonic() - started < 20
    assert f"no answer from an RE Manager at {address}: start one ('make queue')" in (
        capsys.readouterr().err)


def test_address_that_is_not_a_0mq_address_is_refused(capsys):
    assert main(["queue", "--address", "localhost", "state"]) == 1
    assert "'localhost' is not a 0MQ address of an RE Manager, such as tcp://" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("arguments", "message"), [
    (["add", "adaptive", "--scalarizer", "{bad"], "--scalarizer '{bad' is not valid JSON"),
    (["add", "adaptive", "--agent-options", "[1]"], "--agent-options must be a JSON object"),
    (["add", "adaptive", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["add", "adaptive", "--budget", "-1"], "--budget must be at least 0, got -1"),
    (["add", "grid", "--step", "0"], "--step must be at least 1, got 0"),
    (["add", "grid", "--policy", "ucb"], "--policy does not apply to the grid experiment"),
    (["add", "adaptive", "--patch-size", "0"], "--patch-size must be at least 1, got 0"),
    (["add", "adaptive", "--policy", "bogus"],
     "--policy 'bogus': unknown policy kind 'bogus'; use one of ei, "),
    (["add", "adaptive", "--policy", '{"kind": "ucb", "gamma": 1}'],
     "policy 'ucb' has no parameter(s) gamma"),
    (["add", "adaptive", "--scalarizer", "cu_l32"],
     "--scalarizer 'cu_l32' is neither a preset (cu_l23, zn_l23) nor a JSON spec"),
    (["add", "adaptive", "--scalarizer", '{"kind": "band_sum", "window": [930, 1000]}'],
     "unknown scalarizer kind 'band_sum'"),
    (["add", "adaptive", "--scalarizer", '{"kind": "band_integral", "window": [1000, 930]}'],
     "window 1000.0-930.0 eV is empty: low must be below high"),
    (["set-policy", "ucb", "beta=two"], "policy parameter beta must be a number, got 'two'"),
    (["set-policy", "ucb", "=2"], "policy parameter '=2' is not NAME=VALUE"),
])
def test_malformed_commands_are_refused_before_anything_is_sent(arguments, message, capsys):
    # No manager listens at this address: a refusal here comes from the command itself.
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert main(["queue", "--address", address, *arguments]) == 1
    assert message in capsys.readouterr().err


def test_valid_plan_settings_are_sent_as_given():
    from hae_bluesky.cli import build_parser
    from hae_bluesky.commands.queue import _plan_kwargs

    args = build_parser().parse_args([
        "queue", "add", "adaptive", "--scalarizer", "zn_l23", "--policy",
        '{"kind": "ucb", "beta": 2}', "--patch-size", "3", "--seeds", "4", "--budget", "0"])

    assert _plan_kwargs(args) == {"scalarizer": "zn_l23", "policy": {"kind": "ucb", "beta": 2},
                                  "budget": 0, "patch_size": 3, "n_seeds": 4}


class _StubManager:
    """Answers like an RE Manager whose profile failed to load or whose task hangs."""

    user, user_group = "ada", "operator"

    def environment_open(self):
        return {"success": True}

    def wait_for_idle(self, timeout):
        return None

    def status(self):
        return {"worker_environment_exists": False}

    def function_execute(self, function, run_in_background):
        return {"task_uid": "task"}

    def wait_for_completed_task(self, task_uid, timeout):
        raise TimeoutError("Timeout while waiting for condition")


def test_environment_that_does_not_open_is_an_error_pointing_at_the_log():
    from argparse import Namespace

    from hae_bluesky.commands.queue import _env_open

    with pytest.raises(InterventionRefused, match="worker environment did not open: the "
                                                  "profile failed to load.*re-manager.log"):
        _env_open(_StubManager(), Namespace(timeout=1.0))


def test_intervention_that_outlasts_the_timeout_may_still_apply():
    with pytest.raises(TimeoutError, match="set_policy did not finish within 2 s .* it may "
                                           "still take effect: check with 'hae queue state'"):
        call_function(_StubManager(), "set_policy", policy="ucb", timeout=2.0)
