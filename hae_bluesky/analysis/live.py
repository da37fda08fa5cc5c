"""Live views of a running experiment: Bluesky callbacks for the operator.

:class:`LiveExperimentView` redraws, every ``every`` decision steps, the
HAADF image with the trajectory so far and the next position, the agent's
predicted mean, uncertainty and acquisition maps, and the learning curves.
In IPython it draws into an interactive window; headless it writes a PNG
snapshot into a folder. :class:`LiveTrapAlert` feeds each decision to the
trap detector and warns the operator when the experiment looks trapped.

Both are plain document callbacks: subscribe them to a RunEngine
(``RE.subscribe(view)``) or feed them documents from any other source.
They read the streams ``haadf`` (a field ending in ``_image``),
``measurements`` and ``decisions`` that
:func:`hae_bluesky.plans.adaptive.adaptive_experiment` writes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bluesky.callbacks.core import CallbackBase
from matplotlib.figure import Figure

from hae_bluesky.analysis.figures import (
    draw_best_so_far,
    draw_learning_curve,
    draw_map,
    draw_trajectory,
    save_figure,
    to_image,
)
from hae_bluesky.analysis.trap import TrapAlert, TrapDetector

logger = logging.getLogger(__name__)

__all__ = ["LiveExperimentView", "LiveTrapAlert"]

_STREAMS = ("haadf", "measurements", "decisions")


class _StreamCollector(CallbackBase):
    """Keep the events of the experiment's streams as lists of values per field."""

    def __init__(self) -> None:
        super().__init__()
        self._reset({})

    def _reset(self, start: dict[str, Any]) -> None:
        self.start_document = dict(start)
        self._stream_of: dict[str, str] = {}
        self.streams: dict[str, dict[str, list[Any]]] = {
            name: defaultdict(list) for name in _STREAMS
        }
        self.image: np.ndarray | None = None

    def start(self, doc: dict[str, Any]) -> None:
        self._reset(doc)

    def descriptor(self, doc: dict[str, Any]) -> None:
        self._stream_of[doc["uid"]] = doc.get("name", "primary")

    def event(self, doc: dict[str, Any]) -> None:
        self.collect(doc)

    def collect(self, doc: dict[str, Any]) -> str | None:
        """Store an event's values; return its stream name when it is one we keep."""
        name = self._stream_of.get(doc["descriptor"])
        if name not in _STREAMS:
            return None
        data = doc["data"]
        if name == "haadf":
            for key, value in data.items():
                if key.endswith("_image"):
                    self.image = np.asarray(value, dtype=float)
            return name
        stream = self.streams[name]
        for key, value in data.items():
            if np.ndim(value) == 0:
                stream[key].append(value)
        return name

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """One stream as ``{field: array}``, one row per event so far."""
        return {key: np.asarray(values) for key, values in self.streams[name].items()}


class LiveExperimentView(_StreamCollector):
    """Redraw the experiment every ``every`` decisions; show it or save it.

    Panels: the HAADF image with the measured positions (seed points as
    crosses) and an arrow to the position chosen next; the predicted mean,
    uncertainty (posterior std) and acquisition maps of the agent; below,
    the learning curve (uncertainty over all patches and at the next
    position) and the best scalarizer value so far.

    Parameters
    ----------
    agent_getter : callable
        ``agent_getter()`` returns the running agent or None (before the
        agent exists). The agent provides ``patches``, ``predict()`` (with
        ``.mean`` and ``.std``, (M,) in patch-index order) and
        ``acquisition_map()`` ((M,), -inf at measured positions).
    every : int
        k: redraw after every k-th decision of a run (default 1).
    directory : str or Path, optional
        Headless use: write ``<uid[:8]>_step_<step>.png`` there at each
        redraw and ``<uid[:8]>_final.png`` when the run stops.
    interactive : bool
        Draw into a ``pyplot`` window (IPython with an interactive backend);
        default False, which builds a figure that only ``directory`` or
        :attr:`figure` give access to.
    dpi : int
        Resolution of the snapshots.

    Attributes
    ----------
    figure : Figure
        The figure drawn into.
    snapshots : list of Path
        Files written so far, in order.

    Raises
    ------
    ValueError
        If ``every`` is less than 1.

    Examples
    --------
    Headless, a PNG every 10 decisions::

        view = LiveExperimentView(lambda: control.agent, every=10,
                                  directory="snapshots")
        RE.subscribe(view)
    """

    def __init__(
        self,
        agent_getter: Callable[[], Any],
        every: int = 1,
        directory: str | Path | None = None,
        interactive: bool = False,
        dpi: int = 80,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"redraw interval must be at least 1 decision, got {every}")
        super().__init__()
        self.agent_getter = agent_getter
        self.every = int(every)
        self.directory = None if directory is None else Path(directory)
        self.interactive = bool(interactive)
        self.dpi = int(dpi)
        self.snapshots: list[Path] = []
        self._decisions_seen = 0
        if self.interactive:
            from matplotlib import pyplot

            self.figure = pyplot.figure(figsize=(15.0, 8.0), layout="constrained")
        else:
            self.figure = Figure(figsize=(15.0, 8.0), layout="constrained")

    def start(self, doc: dict[str, Any]) -> None:
        super().start(doc)
        self._decisions_seen = 0
        logger.debug("live view follows run %s", doc.get("uid"))

    def event(self, doc: dict[str, Any]) -> None:
        if self.collect(doc) != "decisions":
            return
        self._decisions_seen += 1
        if self._decisions_seen % self.every == 0:
            self.redraw()
            step = int(doc["data"].get("step", self._decisions_seen - 1))
            self._snapshot(f"step_{step:04d}")

    def stop(self, doc: dict[str, Any]) -> None:
        self.redraw(next_position=False)
        self._snapshot("final")

    def redraw(self, next_position: bool = True) -> None:
        """Draw every panel again from the documents so far and the agent now.

        Parameters
        ----------
        next_position : bool
            Mark the position of the latest decision as the next one (it has
            not been measured yet while the run goes on).
        """
        measurements = self.arrays("measurements")
        decisions = self.arrays("decisions")
        agent = self.agent_getter()
        maps = self._model_maps(agent)

        figure = self.figure
        figure.clear()
        grid = figure.add_gridspec(2, 4)
        top = [figure.add_subplot(grid[0, column]) for column in range(4)]
        curve_axes = figure.add_subplot(grid[1, :2])
        best_axes = figure.add_subplot(grid[1, 2:])

        draw_map(figure, top[0], self.image, "HAADF and trajectory", cmap="gray")
        upcoming = None
        if next_position and "row" in decisions and len(decisions["row"]):
            upcoming = (float(decisions["row"][-1]), float(decisions["column"][-1]))
        if "row" in measurements:
            draw_trajectory(top[0], measurements["row"], measurements["column"],
                            measurements.get("seed_point"), upcoming)
        draw_map(figure, top[1], maps["mean"], "predicted mean", label="scalarizer value")
        draw_map(figure, top[2], maps["uncertainty"], "uncertainty", cmap="magma",
                 label="posterior std")
        draw_map(figure, top[3], maps["acquisition"], "acquisition", cmap="cividis")
        draw_learning_curve(curve_axes, decisions)
        draw_best_so_far(best_axes, measurements)
        for axes, label in zip([*top, curve_axes, best_axes],
                               ["haadf", "mean", "uncertainty", "acquisition",
                                "learning_curve", "best_so_far"], strict=True):
            axes.set_label(label)
        figure.suptitle(self._title(decisions))

        if self.interactive:
            figure.canvas.draw_idle()
            figure.canvas.flush_events()

    def _model_maps(self, agent: Any) -> dict[str, np.ndarray | None]:
        maps: dict[str, np.ndarray | None] = dict.fromkeys(
            ("mean", "uncertainty", "acquisition"))
        if agent is None:
            return maps
        prediction = agent.predict()
        maps["mean"] = to_image(prediction.mean, agent.patches)
        maps["uncertainty"] = to_image(prediction.std, agent.patches)
        maps["acquisition"] = to_image(agent.acquisition_map(), agent.patches)
        return maps

    def _title(self, decisions: dict[str, np.ndarray]) -> str:
        uid = str(self.start_document.get("uid", ""))[:8]
        count = len(decisions.get("step", ()))
        return f"run {uid}: {count} decisions"

    def _snapshot(self, name: str) -> None:
        if self.directory is None:
            return
        uid = str(self.start_document.get("uid", "run"))[:8]
        path = save_figure(self.figure, self.directory / f"{uid}_{name}.png", dpi=self.dpi)
        self.snapshots.append(path)
        logger.debug("live view snapshot %s", path)


class LiveTrapAlert(CallbackBase):
    """Warn the operator when the experiment looks trapped.

    Each event of the ``decisions`` stream goes to a
    :class:`~hae_bluesky.analysis.trap.TrapDetector` (chosen position in
    pixels, ``next_uncertainty``, ``step``). The first time in a run that it
    flags a trap, the alert is logged as a warning and ``on_trap(alert)``
    is called; later trap episodes of the same run are logged at INFO, and
    reported to ``on_trap`` too when ``every_episode`` is true.

    Parameters
    ----------
    on_trap : callable, optional
        Called with the :class:`~hae_bluesky.analysis.trap.TrapAlert`.
    every_episode : bool
        Report every trap episode to ``on_trap``, not only the first.
    **detector_parameters
        Passed to :class:`~hae_bluesky.analysis.trap.TrapDetector`
        (``window``, ``max_radius``, ...). The pixel size comes from the
        start document (``start["hae"]["pixel_size_nm"]``) unless given.

    Attributes
    ----------
    detector : TrapDetector
        The detector of the current run.
    alert : TrapAlert or None
        The first alert of the current run.
    """

    def __init__(
        self,
        on_trap: Callable[[TrapAlert], Any] | None = None,
        every_episode: bool = False,
        **detector_parameters: Any,
    ) -> None:
        super().__init__()
        self.on_trap = on_trap
        self.every_episode = bool(every_episode)
        self._parameters = dict(detector_parameters)
        self.detector = TrapDetector(**self._parameters)
        self.alert: TrapAlert | None = None
        self._decision_descriptors: set[str] = set()

    def start(self, doc: dict[str, Any]) -> None:
        parameters = dict(self._parameters)
        pixel_size = doc.get("hae", {}).get("pixel_size_nm")
        if pixel_size is not None:
            parameters.setdefault("pixel_size_nm", float(pixel_size))
        self.detector = TrapDetector(**parameters)
        self.alert = None
        self._decision_descriptors = set()

    def descriptor(self, doc: dict[str, Any]) -> None:
        if doc.get("name") == "decisions":
            self._decision_descriptors.add(doc["uid"])

    def event(self, doc: dict[str, Any]) -> None:
        if doc["descriptor"] not in self._decision_descriptors:
            return
        data = doc["data"]
        alert = self.detector.update(
            data["row"], data["column"], data.get("next_uncertainty", np.nan),
            step=data.get("step"),
        )
        if alert is None:
            return
        first = self.alert is None
        if first:
            self.alert = alert
            logger.warning("%s", alert.message())
        else:
            logger.info("%s", alert.message())
        if self.on_trap is not None and (first or self.every_episode):
            self.on_trap(alert)
