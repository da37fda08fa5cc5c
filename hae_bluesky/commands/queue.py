"""``hae queue``: run and steer experiments through a Bluesky queueserver.

The RE Manager runs the ``profile/startup`` code (``make queue`` starts
it with Redis and a Tiled server). These subcommands talk to it over 0MQ
with :mod:`bluesky_queueserver_api`, as one user of one group: the
manager checks the group against ``profile/user_group_permissions.yaml``.

Interventions run as background functions (``function_execute`` with
``run_in_background=True``), so they reach the agent while the adaptive
plan runs. The queueserver does not tell a function who called it, so
each intervention also sends the user and group as the ``user`` and
``group`` keywords; they are recorded in the run's ``interventions``
stream.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["InterventionRefused", "call_function", "connect", "register"]

#: Environment variables of the defaults: 0MQ control address, user, group.
ADDRESS_ENV = "QSERVER_ZMQ_CONTROL_ADDRESS"
INFO_ADDRESS_ENV = "QSERVER_ZMQ_INFO_ADDRESS"
USER_ENV = "HAE_QUEUE_USER"
GROUP_ENV = "HAE_QUEUE_GROUP"
DEFAULT_ADDRESS = "tcp://localhost:60615"


class InterventionRefused(RuntimeError):
    """The manager or the experiment refused a request; the message says why."""


def connect(address: str | None = None, *, info_address: str | None = None,
            user: str | None = None, group: str | None = None) -> Any:
    """Open a client of the RE Manager.

    Parameters
    ----------
    address : str, optional
        0MQ control address, default ``$QSERVER_ZMQ_CONTROL_ADDRESS`` or
        ``tcp://localhost:60615``.
    info_address : str, optional
        0MQ address of the console output, default ``$QSERVER_ZMQ_INFO_ADDRESS``.
    user, group : str, optional
        Who sends the requests; default ``$HAE_QUEUE_USER`` or the login
        name, and ``$HAE_QUEUE_GROUP`` or ``operator``.

    Returns
    -------
    bluesky_queueserver_api.zmq.REManagerAPI
        Close it with ``close()``.
    """
    import zmq
    from bluesky_queueserver_api.zmq import REManagerAPI

    address = _address(address)
    try:
        manager = REManagerAPI(
            zmq_control_addr=address,
            zmq_info_addr=info_address or os.environ.get(INFO_ADDRESS_ENV) or None)
    except zmq.ZMQError as error:
        raise ValueError(f"{address!r} is not a 0MQ address of an RE Manager, such as "
                         f"{DEFAULT_ADDRESS} ({error})") from None
    manager.user = user or os.environ.get(USER_ENV) or getpass.getuser()
    manager.user_group = group or os.environ.get(GROUP_ENV) or "operator"
    return manager


def _address(address: str | None) -> str:
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def call_function(manager: Any, name: str, *, timeout: float = 60.0,
                  send_user: bool = True, **kwargs: Any) -> Any:
    """Run a profile function in the background and return its result.

    Parameters
    ----------
    manager : REManagerAPI
        Client from :func:`connect`.
    name : str
        Function in the worker namespace (``set_policy``, ``agent_state`` ...).
    timeout : float
        Seconds to wait for the result.
    send_user : bool
        Add ``user`` and ``group`` keywords (the client's) to the call.
    **kwargs
        Arguments of the function (JSON-able).

    Returns
    -------
    Any
        The function's return value.

    Raises
    ------
    InterventionRefused
        When the manager refuses the request (permissions, no environment)
        or the function raises; the message is the manager's or the
        function's own.
    """
    from bluesky_queueserver_api import BFunc
    from bluesky_queueserver_api.comm_base import RequestFailedError

    if send_user:
        kwargs.update(user=manager.user, group=manager.user_group)
    try:
        reply = manager.function_execute(BFunc(name, **kwargs), run_in_background=True)
    except RequestFailedError as error:
        raise InterventionRefused(_without_prefix(str(error))) from None
    try:
        manager.wait_for_completed_task(reply["task_uid"], timeout=timeout)
    except TimeoutError:
        raise TimeoutError(
            f"{name} did not finish within {timeout:g} s (the agent may be busy deciding); "
            "it may still take effect: check with 'hae queue state', or give a longer "
            "--timeout next time") from None
    result = manager.task_result(reply["task_uid"])["result"]
    if not result["success"]:
        # The worker reports "Error occurred while executing 'Execute function': <reason>".
        reason = result["msg"].partition("': ")[2] or result["msg"]
        raise InterventionRefused(f"{name}: {reason}")
    return result["return_value"]


def _without_prefix(message: str) -> str:
    return message.removeprefix("Request failed: ").removeprefix("Error: ")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``queue`` subcommand and its own subcommands."""
    parser = subparsers.add_parser(
        "queue", help="run and steer experiments through the queueserver",
        description="Run and steer experiments through a Bluesky queueserver (RE Manager "
                    "started with the profile, e.g. by 'make queue').")
    parser.add_argument("--address", help=f"RE Manager 0MQ control address (default "
                                          f"${ADDRESS_ENV} or {DEFAULT_ADDRESS})")
    parser.add_argument("--user", help=f"user name (default ${USER_ENV} or the login name)")
    parser.add_argument("--group", help=f"user group (default ${GROUP_ENV} or operator)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the manager (default 60)")
    commands = parser.add_subparsers(title="queue commands", metavar="QUEUE_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    def command(name: str, summary: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(func=lambda args: _run(func, args))
        return sub

    command("env-open", "open the RE worker environment (loads the profile)", _env_open)
    command("env-close", "close the RE worker environment", _env_close)

    add = command("add", "queue an experiment", _add)
    add.add_argument("plan", choices=("adaptive", "grid", "random"))
    add.add_argument("--scalarizer", help="preset name (cu_l23, zn_l23) or a JSON spec")
    add.add_argument("--policy", help="adaptive: policy kind or JSON spec (default ei)")
    add.add_argument("--patch-size", type=int, help="adaptive: N of the N x N patches")
    add.add_argument("--seeds", type=int, help="adaptive: number of seed points")
    add.add_argument("--budget", type=int, help="number of measurements (after the seeds)")
    add.add_argument("--seed", type=int, help="random seed")
    add.add_argument("--step", type=int, help="grid: take every step-th pixel")
    add.add_argument("--agent-options", help="adaptive: JSON dict of agent settings")
    add.add_argument("--start", action="store_true", help="start the queue afterwards")

    remove = command("remove", "remove an item from the queue (default: the front one)",
                     _remove)
    remove.add_argument("--uid", help="the item's uid, as 'hae queue add' printed it")
    command("clear", "remove every item from the queue (a running plan goes on)", _clear)

    command("start", "start the queue", _start)
    command("pause", "pause the running plan at the next checkpoint", _pause).add_argument(
        "--immediate", action="store_true", help="pause at once, not at a checkpoint")
    command("resume", "resume the paused plan", _resume)
    command("state", "manager status and the agent's state", _state)

    policy = command("set-policy", "use another policy from the next step on", _set_policy)
    policy.add_argument("kind", help="ei, ucb, mu, pi, thompson or random")
    policy.add_argument("parameters", nargs="*", metavar="NAME=VALUE",
                        help="policy parameters, e.g. beta=2")

    scalarizer = command("set-scalarizer", "steer by another scalarizer from the next step on",
                         _set_scalarizer)
    scalarizer.add_argument("preset", nargs="?", help="preset name (cu_l23, zn_l23)")
    scalarizer.add_argument("--kind", help="band_integral, band_maximum, peak_position, "
                                           "edge_intensity")
    scalarizer.add_argument("--window", nargs=2, type=float, metavar=("LOW", "HIGH"),
                            help="energy window in eV")
    scalarizer.add_argument("--background-window", nargs=2, type=float,
                            metavar=("LOW", "HIGH"), help="edge_intensity: background (eV)")

    command("set-patch-size", "use N x N patches from the next step on",
            _set_patch_size).add_argument("size", type=int, help="N (pixels)")
    command("add-points", "measure these positions next", _add_points).add_argument(
        "coordinates", nargs="+", type=float, metavar="X Y", help="positions in nm")
    command("stop-experiment", "end the adaptive experiment after this step",
            _stop_experiment).add_argument("reason", nargs="?", default="stop requested")


def _run(func, args: argparse.Namespace) -> int:
    from bluesky_queueserver_api.comm_base import RequestFailedError, RequestTimeoutError

    manager = connect(args.address, user=args.user, group=args.group)
    try:
        result = func(manager, args)
    except RequestTimeoutError:
        print(f"hae queue: no answer from an RE Manager at {_address(args.address)}: start "
              f"one ('make queue'), or give its address with --address or ${ADDRESS_ENV}",
              file=sys.stderr)
        return 1
    except (InterventionRefused, RequestFailedError, TimeoutError) as error:
        print(f"hae queue: {_explained(manager, _without_prefix(str(error)))}",
              file=sys.stderr)
        return 1
    finally:
        manager.close()
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _explained(manager: Any, message: str) -> str:
    """Add to a refusal for an unknown group the groups the manager knows."""
    if "Unknown user group" not in message:
        return message
    try:
        groups = manager.permissions_get()["user_group_permissions"]["user_groups"]
    except Exception as error:
        return f"{message} (the manager's groups could not be read: {error})"
    known = ", ".join(sorted(set(groups) - {"root"}))
    return f"{message}; give --group (or ${GROUP_ENV}) as one of: {known}"


def _env_open(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.environment_open()
    manager.wait_for_idle(timeout=args.timeout)
    status = manager.status()
    if not status["worker_environment_exists"]:
        raise InterventionRefused(
            "the worker environment did not open: the profile failed to load; the RE "
            "Manager's log says why (re-manager.log in $HAE_QUEUE_DIR for 'make queue')")
    return _summary(status)


def _env_close(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.environment_close()
    manager.wait_for_idle(timeout=args.timeout)
    return _summary(manager.status())


def _add(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    from bluesky_queueserver_api import BPlan

    kwargs = _plan_kwargs(args)
    plan = BPlan(f"{args.plan}_experiment", **kwargs)
    # The queueserver keeps who queued an item in its history, not in the run.
    plan.meta = {"queued_by": {"user": manager.user, "group": manager.user_group}}
    reply = manager.item_add(plan)
    if args.start and manager.status()["manager_state"] != "executing_queue":
        manager.queue_start()
    return {"item_uid": reply["item"]["item_uid"], "plan": reply["item"]["name"],
            "kwargs": kwargs, "queue_size": reply["qsize"], "started": args.start}


#: Options of ``hae queue add`` that only some plans take.
_PLAN_OPTIONS = {"policy": ("adaptive",), "patch_size": ("adaptive",), "seeds": ("adaptive",),
                 "agent_options": ("adaptive",), "seed": ("adaptive", "random"),
                 "step": ("grid",)}
#: Smallest value of each whole-number option.
_MINIMA = {"patch_size": 1, "seeds": 1, "budget": 0, "step": 1}


def _plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    for option, plans in _PLAN_OPTIONS.items():
        if getattr(args, option) is not None and args.plan not in plans:
            raise ValueError(f"--{option.replace('_', '-')} does not apply to the {args.plan} "
                             f"experiment, only to: {', '.join(plans)}")
    for option, minimum in _MINIMA.items():
        value = getattr(args, option)
        if value is not None and value < minimum:
            raise ValueError(f"--{option.replace('_', '-')} must be at least {minimum}, "
                             f"got {value}")
    if args.plan == "random" and args.budget is None:
        raise ValueError("a random experiment needs --budget")

    kwargs: dict[str, Any] = {}
    if args.scalarizer is not None:
        kwargs["scalarizer"] = _checked_scalarizer(args.scalarizer)
    if args.policy is not None:
        kwargs["policy"] = _checked_policy(args.policy)
    if args.agent_options is not None:
        kwargs["agent_options"] = _json_or_name(args.agent_options, "--agent-options")
        if not isinstance(kwargs["agent_options"], dict):
            raise ValueError("--agent-options must be a JSON object, such as "
                             '\'{"model_settings": {"initial_iterations": 30}}\'')
    names = {"budget": "budget", "seed": "seed", "patch_size": "patch_size",
             "seeds": "n_seeds", "step": "step"}
    for option, name in names.items():
        if getattr(args, option) is not None:
            kwargs[name] = getattr(args, option)
    return kwargs


def _json_or_name(text: str, option: str) -> Any:
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{option} {text!r} is not valid JSON ({error})") from None


def _checked_scalarizer(text: str) -> Any:
    """A preset name of a registered data set, or a JSON spec that builds a scalarizer.

    Whether the energy windows lie on the recording is for the manager to
    check: only it has the data.
    """
    from hae_bluesky.data.registry import DATASETS
    from hae_bluesky.data.scalarizers import scalarizer_from_spec

    scalarizer = _json_or_name(text, "--scalarizer")
    if isinstance(scalarizer, str):
        presets = sorted({name for dataset in DATASETS.values() for name in dataset.scalarizers})
        if scalarizer not in presets:
            raise ValueError(
                f"--scalarizer {text!r} is neither a preset ({', '.join(presets)}) nor a JSON "
                'spec such as \'{"kind": "band_integral", "window": [930, 1000]}\'')
        return scalarizer
    try:
        scalarizer_from_spec(scalarizer)
    except ValueError as error:
        raise ValueError(f"--scalarizer {text!r}: {error}") from None
    return scalarizer


def _checked_policy(text: str) -> Any:
    """A policy kind or a JSON spec that :func:`policy_from_spec` accepts."""
    from hae_bluesky.agent.policy import policy_from_spec

    policy = _json_or_name(text, "--policy")
    try:
        policy_from_spec(policy)
    except ValueError as error:
        raise ValueError(f"--policy {text!r}: {error}") from None
    return policy


def _remove(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    reply = (manager.item_remove(uid=args.uid) if args.uid is not None
             else manager.item_remove(pos="front"))
    item = reply["item"]
    return {"removed": {"item_uid": item.get("item_uid"), "plan": item.get("name"),
                        "kwargs": item.get("kwargs", {})},
            "queue_size": reply["qsize"]}


def _clear(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.queue_clear()
    return _summary(manager.status())


def _start(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.queue_start()
    return _summary(manager.status())


def _pause(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.re_pause("immediate" if args.immediate else "deferred")
    manager.wait_for_idle_or_paused(timeout=args.timeout)
    return _summary(manager.status())


def _resume(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.re_resume()
    return _summary(manager.status())


def _state(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    status = manager.status()
    state: dict[str, Any] = {"manager": _summary(status)}
    if status["items_in_history"]:
        state["last_item"] = _last_item(manager)
    if status["worker_environment_exists"]:
        state["agent"] = call_function(manager, "agent_state", timeout=args.timeout,
                                       send_user=False)
    return state


def _last_item(manager: Any) -> dict[str, Any]:
    """The latest finished queue item: what ran, how it ended and why."""
    item = manager.history_get()["items"][-1]
    result = item.get("result", {})
    last = {"name": item.get("name"), "kwargs": item.get("kwargs", {}),
            "user": item.get("user"), "exit_status": result.get("exit_status"),
            "message": result.get("msg", ""), "run_uids": result.get("run_uids", [])}
    if last["exit_status"] != "completed":
        queue = manager.queue_get()["items"]
        if queue and (queue[0].get("name"), queue[0].get("kwargs", {})) == (
                last["name"], last["kwargs"]):
            last["note"] = ("the manager put this item back at the front of the queue: "
                            "'hae queue start' runs it again once the cause is fixed, "
                            "'hae queue remove' drops it")
    return last


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    keys = ("manager_state", "re_state", "worker_environment_exists", "items_in_queue",
            "items_in_history", "running_item_uid")
    return {key: status.get(key) for key in keys}


def _set_policy(manager: Any, args: argparse.Namespace) -> Any:
    spec: dict[str, Any] = {"kind": args.kind}
    for item in args.parameters:
        name, _, value = (part.strip() for part in item.partition("="))
        if not (name and value):
            raise ValueError(f"policy parameter {item!r} is not NAME=VALUE, e.g. beta=2")
        try:
            spec[name] = float(value)
        except ValueError:
            raise ValueError(f"policy parameter {name} must be a number, got {value!r}"
                             ) from None
    return call_function(manager, "set_policy", policy=spec, timeout=args.timeout)


def _set_scalarizer(manager: Any, args: argparse.Namespace) -> Any:
    if args.preset is not None:
        if args.kind or args.window or args.background_window:
            raise ValueError("give a preset name or --kind/--window, not both")
        scalarizer: Any = args.preset
    else:
        if args.window is None:
            raise ValueError("give a preset name or --window LOW HIGH (eV)")
        scalarizer = {"kind": args.kind or "band_integral", "window": args.window}
        if args.background_window is not None:
            scalarizer["background_window"] = args.background_window
    return call_function(manager, "set_scalarizer", scalarizer=scalarizer,
                         timeout=args.timeout)


def _set_patch_size(manager: Any, args: argparse.Namespace) -> Any:
    return call_function(manager, "set_patch_size", patch_size=args.size, timeout=args.timeout)


def _add_points(manager: Any, args: argparse.Namespace) -> Any:
    points = _pairs(args.coordinates)
    return call_function(manager, "add_points_of_interest", points=points,
                         timeout=args.timeout)


def _pairs(numbers: Sequence[float]) -> list[list[float]]:
    if len(numbers) % 2:
        raise ValueError(f"positions come as X Y pairs (nm); got {len(numbers)} numbers")
    return [[numbers[i], numbers[i + 1]] for i in range(0, len(numbers), 2)]


def _stop_experiment(manager: Any, args: argparse.Namespace) -> Any:
    return call_function(manager, "stop_experiment", reason=args.reason, timeout=args.timeout)
