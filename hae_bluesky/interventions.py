"""What an operator may change in a running adaptive experiment, as plain functions.

:class:`Interventions` wraps the :class:`~hae_bluesky.plans.ExperimentControl`
shared with the running :func:`~hae_bluesky.plans.adaptive_experiment` and
offers one function per intervention. Every argument and every return value
is JSON-able, so the functions can be called by name through the
queueserver (``function_execute`` with ``run_in_background=True``) while the
plan runs, as well as from an IPython session.

Each changing function checks the shape of its request here (a policy is a
kind name or a dict with a ``kind``, or that dict as JSON text; a window is
two increasing energies in eV; a position is two numbers in nm, numpy ones
included), then hands it to the agent, which
checks it against the experiment (known policy kinds, the spectrometer's
energy range, the image size, the field of view). A refused request raises
``ValueError`` with the reason, leaves the experiment as it was, and is
recorded in the run's ``interventions`` stream with ``accepted = False``.
An accepted one applies at the next step.

The queueserver does not tell a function who called it: the user name and
group of a request are checked against the permissions by the manager and
then dropped. The functions therefore take ``user`` and ``group`` keywords,
which ``hae queue`` fills with the name and group it sends the request
under, and which go into the ``interventions`` stream.

Examples
--------
>>> from hae_bluesky.plans import ExperimentControl
>>> interventions = Interventions(ExperimentControl())
>>> sorted(interventions.functions())  # doctest: +NORMALIZE_WHITESPACE
['add_points_of_interest', 'agent_state', 'set_patch_size', 'set_policy',
 'set_scalarizer', 'stop_experiment']
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hae_bluesky.data import DATASETS, scalarizer_preset
from hae_bluesky.plans.control import ExperimentControl
from hae_bluesky.plans.records import to_json

__all__ = ["CHANGING_FUNCTIONS", "READING_FUNCTIONS", "Interventions"]

#: Names of the functions that change the running experiment.
CHANGING_FUNCTIONS = ("set_policy", "set_scalarizer", "set_patch_size",
                      "add_points_of_interest", "stop_experiment")
#: Names of the functions that only read its state.
READING_FUNCTIONS = ("agent_state",)


class Interventions:
    """The intervention functions of one experiment control.

    Parameters
    ----------
    control : ExperimentControl
        The control the adaptive plan attaches its agent to.
    dataset : str
        Data set whose scalarizer presets a name refers to (``"cuzn"``).
    user, group : str
        Recorded when a call names no user or group (an interactive
        session's login name, for example).
    """

    def __init__(self, control: ExperimentControl, dataset: str = "cuzn", *,
                 user: str = "", group: str = "") -> None:
        self.control = control
        self.dataset = dataset
        self.user = user
        self.group = group

    def functions(self) -> dict[str, Callable[..., Any]]:
        """Name -> function, for the names in a start-up namespace."""
        return {name: getattr(self, name) for name in CHANGING_FUNCTIONS + READING_FUNCTIONS}

    def set_policy(self, policy: str | Mapping[str, Any], *, user: str = "",
                   group: str = "", **parameters: Any) -> dict[str, Any]:
        """Use another policy from the next step on.

        ``set_policy("ucb", beta=3)`` and ``set_policy({"kind": "ucb",
        "beta": 3})`` ask for the same policy.

        Parameters
        ----------
        policy : str or dict
            A kind (``"ucb"``) with default parameters, or a spec such as
            ``{"kind": "ucb", "beta": 2.0}``. Kinds: ei, ucb, mu, pi,
            thompson, random.
        user, group : str
            Who asks (recorded with the change).
        **parameters
            Policy parameters and modifiers (``xi``, ``beta``,
            ``travel_weight`` ...) added to ``policy``; they override the
            same keys of a spec.

        Returns
        -------
        dict
            The recorded intervention (``before``, ``after``, ``user`` ...).

        Raises
        ------
        ValueError
            For an unknown kind or parameter; nothing changes.
        NoExperimentRunning
            When no adaptive experiment is running.
        """
        def change(agent: Any) -> dict[str, Any]:
            return agent.set_policy({**_policy_spec(policy), **parameters})

        return self._intervene("policy", change, user, group)

    def set_scalarizer(self, scalarizer: str | Mapping[str, Any], *, user: str = "",
                       group: str = "") -> dict[str, Any]:
        """Steer by another scalarizer from the next step on.

        Parameters
        ----------
        scalarizer : str or dict
            A preset name of the data set (``"cu_l23"``) or a spec such as
            ``{"kind": "band_integral", "window": [930, 1000]}`` (eV).
        user, group : str
            Who asks.

        Returns
        -------
        dict
            The recorded intervention.

        Raises
        ------
        ValueError
            For an unknown preset or kind, or a window that is not two
            increasing energies inside the spectrometer's range.
        NoExperimentRunning
            When no adaptive experiment is running.
        """
        def change(agent: Any) -> dict[str, Any]:
            return agent.set_scalarizer(_scalarizer_spec(scalarizer, self.dataset))

        return self._intervene("scalarizer", change, user, group)

    def set_patch_size(self, patch_size: int, *, user: str = "",
                       group: str = "") -> dict[str, Any]:
        """Describe positions by ``patch_size`` x ``patch_size`` HAADF patches (pixels).

        Raises
        ------
        ValueError
            When the size is not a positive whole number of pixels no larger
            than the image.
        NoExperimentRunning
            When no adaptive experiment is running.
        """
        def change(agent: Any) -> dict[str, Any]:
            return agent.set_patch_size(_whole_number(patch_size, "patch size"))

        return self._intervene("patch_size", change, user, group)

    def add_points_of_interest(self, points: Sequence[Sequence[float]], *, user: str = "",
                               group: str = "") -> dict[str, Any]:
        """Ask the agent to measure these beam positions next.

        Parameters
        ----------
        points : list of (x, y)
            Beam positions in nm, inside the field of view.
        user, group : str
            Who asks.

        Raises
        ------
        ValueError
            For a malformed position or one off the field of view; none of
            the points is added then.
        NoExperimentRunning
            When no adaptive experiment is running.
        """
        def change(agent: Any) -> dict[str, Any]:
            return agent.add_points_of_interest(_positions(points))

        return self._intervene("points_of_interest", change, user, group)

    def stop_experiment(self, reason: str = "stop requested", *, user: str = "",
                        group: str = "") -> dict[str, Any]:
        """End the experiment after the current measurement; the run closes as a success.

        The stop reason (with ``by <user>``) becomes the ``reason`` of the
        stop document.

        Raises
        ------
        NoExperimentRunning
            When no adaptive experiment is running.
        """
        return _plain(self.control.request_stop(str(reason), user=user or self.user,
                                                group=group or self.group))

    def agent_state(self) -> dict[str, Any]:
        """Report the running experiment's agent, or the last one's after it ended.

        Returns
        -------
        dict
            ``running`` (bool) and, when there has been an experiment, the
            agent's report under ``report`` (step, n_measured, policy,
            scalarizer, patch_size, best_value, uncertainty_mean ...), with
            NaN given as ``None``.
        """
        agent = self.control.agent if self.control.running else self.control.last_agent
        state: dict[str, Any] = {"running": self.control.running,
                                 "stop_reason": self.control.stop_reason}
        state["report"] = None if agent is None else _plain(agent.report())
        return state

    def _intervene(self, parameter: str, change: Callable[[Any], dict[str, Any]],
                   user: str, group: str) -> dict[str, Any]:
        return _plain(self.control.intervene(parameter, change, user=user or self.user,
                                             group=group or self.group))


def _json_spec(value: Any, what: str) -> Any:
    """A string that opens with ``{`` is a JSON spec, as on the ``hae`` command line."""
    if not (isinstance(value, str) and value.lstrip().startswith("{")):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"the {what} {value!r} is not valid JSON ({error})") from None


def _policy_spec(policy: Any) -> dict[str, Any]:
    policy = _json_spec(policy, "policy")
    if isinstance(policy, str):
        return {"kind": policy}
    if not isinstance(policy, Mapping) or not isinstance(policy.get("kind"), str):
        raise ValueError(f"a policy is a kind name or a dict like {{'kind': 'ucb', "
                         f"'beta': 2.0}}, got {policy!r}")
    return dict(policy)


def _scalarizer_spec(scalarizer: Any, dataset: str) -> dict[str, Any]:
    scalarizer = _json_spec(scalarizer, "scalarizer")
    if isinstance(scalarizer, str) and dataset not in DATASETS:
        raise ValueError(f"the data of this experiment ({dataset or 'not a registered data set'})"
                         f" has no scalarizer presets, so {scalarizer!r} names nothing; give a "
                         "spec such as {'kind': 'band_integral', 'window': [930, 1000]} (eV)")
    if isinstance(scalarizer, str):
        try:
            return scalarizer_preset(scalarizer, dataset)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
    if not isinstance(scalarizer, Mapping) or not isinstance(scalarizer.get("kind"), str):
        raise ValueError(f"a scalarizer is a preset name or a dict like {{'kind': "
                         f"'band_integral', 'window': [930, 1000]}}, got {scalarizer!r}")
    spec = dict(scalarizer)
    for name in ("window", "background_window"):
        if name in spec:
            spec[name] = list(_window(spec[name], name))
    return spec


def _window(value: Any, name: str) -> tuple[float, float]:
    numbers = _numbers(value, 2, f"the {name} (two energies in eV)")
    if not numbers[0] < numbers[1]:
        raise ValueError(f"the {name} {numbers[0]:g}-{numbers[1]:g} eV is empty: give the "
                         "lower energy first")
    return numbers[0], numbers[1]


def _positions(points: Any) -> list[tuple[float, float]]:
    if isinstance(points, np.ndarray):
        points = points.tolist()
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence) or not points:
        raise ValueError(f"points of interest are a non-empty list of [x, y] positions in nm, "
                         f"got {points!r}")
    pairs = [_numbers(point, 2, "a position [x, y] in nm") for point in points]
    return [(x, y) for x, y in pairs]


def _numbers(value: Any, count: int, what: str) -> list[float]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != count:
        raise ValueError(f"{what} needs {count} numbers, got {value!r}")
    if not all(_is_number(item) and math.isfinite(item) for item in value):
        raise ValueError(f"{what} needs {count} finite numbers, got {value!r}")
    return [float(item) for item in value]


def _is_number(value: Any) -> bool:
    """True for a real number (numpy ones included), False for booleans and text."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _whole_number(value: Any, what: str) -> int:
    whole = _is_number(value) and float(value).is_integer()
    if not whole:
        raise ValueError(f"the {what} must be a whole number of pixels, got {value!r}")
    return int(value)


def _plain(value: Any) -> Any:
    """Make ``value`` plain JSON (numpy values converted, NaN as ``None``)."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: clean(entry) for key, entry in item.items()}
        if isinstance(item, list):
            return [clean(entry) for entry in item]
        return item

    return clean(json.loads(to_json(value)))
