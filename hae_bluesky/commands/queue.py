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
    from bluesky_queueserver_api.zmq import REManagerAPI

    manager = REManagerAPI(
        zmq_control_addr=address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS,
        zmq_info_addr=info_address or os.environ.get(INFO_ADDRESS_ENV) or None)
    manager.user = user or os.environ.get(USER_ENV) or getpass.getuser()
    manager.user_group = group or os.environ.get(GROUP_ENV) or "operator"
    return manager


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
    manager.wait_for_completed_task(reply["task_uid"], timeout=timeout)
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
    except (InterventionRefused, RequestFailedError, RequestTimeoutError, TimeoutError) as error:
        print(f"hae queue: {_without_prefix(str(error))}", file=sys.stderr)
        return 1
    finally:
        manager.close()
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _env_open(manager: Any, args: argparse.Namespace) -> dict[str, Any]:
    manager.environment_open()
    manager.wait_for_idle(timeout=args.timeout)
    return _summary(manager.status())


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


def _plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.scalarizer is not None:
        kwargs["scalarizer"] = _json_or_name(args.scalarizer)
    names = {"budget": "budget", "seed": "seed"}
    if args.plan == "adaptive":
        names.update(patch_size="patch_size", seeds="n_seeds")
        if args.policy is not None:
            kwargs["policy"] = _json_or_name(args.policy)
        if args.agent_options is not None:
            kwargs["agent_options"] = json.loads(args.agent_options)
    elif args.plan == "grid":
        names = {"budget": "budget", "step": "step"}
    elif args.budget is None:
        raise ValueError("a random experiment needs --budget")
    for option, name in names.items():
        if getattr(args, option) is not None:
            kwargs[name] = getattr(args, option)
    return kwargs


def _json_or_name(text: str) -> Any:
    return json.loads(text) if text.lstrip().startswith("{") else text


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
    if status["worker_environment_exists"]:
        state["agent"] = call_function(manager, "agent_state", timeout=args.timeout,
                                       send_user=False)
    return state


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    keys = ("manager_state", "re_state", "worker_environment_exists", "items_in_queue",
            "items_in_history", "running_item_uid")
    return {key: status.get(key) for key in keys}


def _set_policy(manager: Any, args: argparse.Namespace) -> Any:
    spec: dict[str, Any] = {"kind": args.kind}
    for item in args.parameters:
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(f"policy parameter {item!r} is not NAME=VALUE")
        spec[name] = float(value)
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
