"""The operator's handle on a running adaptive experiment.

An :class:`ExperimentControl` is shared between the plan (which runs in the
RunEngine's thread) and intervention functions (which run in other threads,
for example queueserver background functions). Interventions are validated
and handed to the agent at once; the agent applies them at its next step.
Each accepted or refused intervention is logged here, and the plan writes
the log into the run's ``interventions`` stream at the next step boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ExperimentControl", "InterventionRecord", "NoExperimentRunning"]


class NoExperimentRunning(RuntimeError):
    """An intervention arrived while no adaptive experiment was running."""


@dataclass
class InterventionRecord:
    """One intervention as it goes into the ``interventions`` stream.

    Attributes
    ----------
    time : float
        Unix time the request arrived (s).
    user, group : str
        Who asked, as the caller reports it ("" when unknown).
    parameter : str
        What it changes: ``policy``, ``scalarizer``, ``patch_size``,
        ``points_of_interest`` or ``stop``.
    before, after : Any
        The value before and the value requested (JSON-able).
    accepted : bool
        False when the request was refused; ``message`` says why.
    step : int
        The step at which it applies (filled in by the plan).
    """

    time: float
    user: str
    group: str
    parameter: str
    before: Any
    after: Any
    accepted: bool = True
    message: str = ""
    step: int = -1

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict."""
        return dict(self.__dict__)


@dataclass
class ExperimentControl:
    """Stop requests, interventions and the agent of the experiment in progress.

    Attributes
    ----------
    agent : object or None
        The agent of the running experiment (``None`` between experiments).
    last_agent : object or None
        The agent of the latest experiment, kept after it ends (final model).
    stop_reason : str or None
        Set by :meth:`request_stop`; the plan ends after the current step.
    """

    agent: Any = None
    last_agent: Any = None
    stop_reason: str | None = None
    _log: list[InterventionRecord] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def attach(self, agent: Any) -> None:
        """Make ``agent`` the target of interventions; clear any old stop request."""
        with self._lock:
            self.agent = self.last_agent = agent
            self.stop_reason = None
            self._log.clear()

    def detach(self) -> None:
        """Forget the agent at the end of an experiment."""
        with self._lock:
            self.agent = None

    @property
    def running(self) -> bool:
        """True while an experiment's agent is attached."""
        return self.agent is not None

    def intervene(self, parameter: str, change: Callable[[Any], dict[str, Any]], *,
                  user: str = "", group: str = "") -> dict[str, Any]:
        """Apply ``change(agent)`` and log it, or log and re-raise its refusal.

        Parameters
        ----------
        parameter : str
            Name of what changes (for the log).
        change : callable
            Called with the agent; returns ``{"before": ..., "after": ...}``
            or raises ``ValueError`` for a bad request (state unchanged).
        user, group : str
            Who asked.

        Returns
        -------
        dict
            The logged record.

        Raises
        ------
        NoExperimentRunning
            When no experiment is running.
        ValueError
            When the agent refuses the change; the refusal is logged too.
        """
        with self._lock:
            if self.agent is None:
                raise NoExperimentRunning(
                    f"no adaptive experiment is running: cannot change {parameter}"
                )
            try:
                outcome = change(self.agent)
            except ValueError as error:
                self._log.append(InterventionRecord(time.time(), user, group, parameter,
                                                    None, None, False, str(error)))
                logger.warning("%s change by %s (%s) refused: %s", parameter, user or "?",
                               group or "?", error)
                raise
            record = InterventionRecord(time.time(), user, group, parameter,
                                        outcome.get("before"), outcome.get("after"))
            self._log.append(record)
        logger.info("%s changed by %s (%s): %s -> %s", parameter, user or "?", group or "?",
                    record.before, record.after)
        return record.to_dict()

    def request_stop(self, reason: str = "stop requested", *, user: str = "",
                     group: str = "") -> dict[str, Any]:
        """Ask the experiment to finish its current measurement and close the run."""
        with self._lock:
            if self.agent is None:
                raise NoExperimentRunning("no adaptive experiment is running: nothing to stop")
            who = f" by {user}" if user else ""
            self.stop_reason = f"{reason}{who}"
            record = InterventionRecord(time.time(), user, group, "stop", None, reason)
            self._log.append(record)
        logger.info("stop requested%s: %s", who, reason)
        return record.to_dict()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold interventions back while the plan reads them and the agent decides."""
        with self._lock:
            yield

    def drain(self) -> list[InterventionRecord]:
        """Return and clear the interventions logged since the last call."""
        with self._lock:
            records, self._log = self._log, []
        return records
