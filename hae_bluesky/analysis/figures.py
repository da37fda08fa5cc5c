"""Figures of an experiment: trajectory, model maps, learning curves, feature space.

Every function builds a :class:`matplotlib.figure.Figure` directly, without
``pyplot``, so figures can be made in a headless process, in a thread, or
next to a user's own interactive figures without touching their state.
Save one with :func:`save_figure`; show one in a notebook by leaving it as
the value of a cell.

Conventions
-----------
Images are drawn in pixels of the HAADF image, ``x = column`` to the right
and ``y = row`` downwards (``imshow`` with its default origin). A value per
patch is put at the patch's centre pixel with :func:`to_image`; pixels
where no whole patch fits (within ``N // 2`` of the edge) are NaN and drawn
blank.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hae_bluesky.analysis.metrics import best_so_far

logger = logging.getLogger(__name__)

__all__ = [
    "draw_best_so_far",
    "draw_learning_curve",
    "draw_map",
    "draw_trajectory",
    "embedding_figure",
    "experiment_summary_figure",
    "feature_space_figure",
    "haadf_image",
    "save_figure",
    "to_image",
]


class PatchGrid(Protocol):
    """Where the patches sit: what :func:`to_image` needs of a patch set."""

    rows: np.ndarray
    columns: np.ndarray
    image_shape: tuple[int, int]


def to_image(values: np.ndarray | Sequence[float], patches: PatchGrid) -> np.ndarray:
    """Put one value per patch at the patch's centre pixel of the HAADF image.

    ``image[rows[k], columns[k]] = values[k]`` for every patch ``k``; every
    other pixel is NaN. Infinite values (an acquisition function at measured
    positions) become NaN too, so that they are drawn blank.

    Parameters
    ----------
    values : array-like of float
        (M,) values in patch-index order.
    patches : Patches or agent.patches
        Anything with ``rows``, ``columns`` ((M,) int centre pixels) and
        ``image_shape`` ((ny, nx)).

    Returns
    -------
    numpy.ndarray
        (ny, nx) float image.

    Raises
    ------
    ValueError
        If ``values`` does not hold one value per patch.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> grid = SimpleNamespace(rows=np.array([1]), columns=np.array([2]), image_shape=(3, 4))
    >>> to_image([5.0], grid)[1].tolist()
    [nan, nan, 5.0, nan]
    """
    values = np.asarray(values, dtype=float).ravel()
    rows = np.asarray(patches.rows, dtype=int)
    columns = np.asarray(patches.columns, dtype=int)
    if values.size != rows.size:
        raise ValueError(
            f"got {values.size} values for {rows.size} patches; pass one value per "
            "patch in patch-index order"
        )
    image = np.full(tuple(patches.image_shape), np.nan)
    image[rows, columns] = np.where(np.isfinite(values), values, np.nan)
    return image


def haadf_image(record: Any) -> np.ndarray | None:
    """The HAADF image of a run: the last event's field ending in ``_image``.

    Returns None when the run has no ``haadf`` stream or it has no event.
    """
    stream = record.stream("haadf")
    for key, value in stream.items():
        if key.endswith("_image") and len(value):
            value = np.asarray(value, dtype=float)
            return value[-1] if value.ndim == 3 else value
    return None


def draw_map(
    figure: Figure,
    axes: Axes,
    image: np.ndarray | None,
    title: str,
    cmap: str = "viridis",
    label: str = "",
) -> None:
    """Draw an (ny, nx) map with its colour bar, or a note when there is none.

    Parameters
    ----------
    figure : Figure
        The figure that owns ``axes`` (for the colour bar).
    axes : Axes
        Where to draw.
    image : numpy.ndarray or None
        (ny, nx) values in pixels of the HAADF image; NaN is drawn blank.
    title : str
        Panel title.
    cmap : str
        Matplotlib colour map name.
    label : str
        Colour bar label (units).
    """
    axes.set_title(title, fontsize="medium")
    if image is None or not np.any(np.isfinite(image)):
        axes.text(0.5, 0.5, "no data yet", ha="center", va="center",
                  transform=axes.transAxes, color="0.4")
        axes.set_xticks([])
        axes.set_yticks([])
        return
    shown = axes.imshow(np.ma.masked_invalid(image), cmap=cmap, interpolation="nearest")
    colourbar = figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.03)
    if label:
        colourbar.set_label(label)
    axes.set_xlabel("column (px)")
    axes.set_ylabel("row (px)")


def draw_trajectory(
    axes: Axes,
    rows: np.ndarray,
    columns: np.ndarray,
    seed_point: np.ndarray | None = None,
    next_position: tuple[float, float] | None = None,
) -> None:
    """Draw measured positions in order on an image drawn in pixels.

    Seed points are white crosses; the positions the policy chose are joined
    by a line and coloured from dark (first) to bright (last); the last
    measured position is a red circle and an arrow points from it to
    ``next_position`` (row, column) when one is given.

    Parameters
    ----------
    axes : Axes
        Axes holding an image in pixels (``x = column``, ``y = row``).
    rows, columns : numpy.ndarray
        (T,) measured positions in pixels, in measurement order.
    seed_point : numpy.ndarray of bool, optional
        (T,) True for seed points.
    next_position : tuple of float, optional
        (row, column) in pixels of the position chosen next.
    """
    rows = np.asarray(rows, dtype=float)
    columns = np.asarray(columns, dtype=float)
    seeds = (np.zeros(rows.size, dtype=bool) if seed_point is None
             else np.asarray(seed_point, dtype=bool))
    chosen = ~seeds
    if np.any(seeds):
        axes.scatter(columns[seeds], rows[seeds], marker="x", s=30, c="white",
                     linewidths=1.2, label="seed points")
    if np.any(chosen):
        axes.plot(columns[chosen], rows[chosen], "-", color="white", linewidth=0.6,
                  alpha=0.6)
        axes.scatter(columns[chosen], rows[chosen], c=np.arange(int(chosen.sum())),
                     cmap="plasma", s=14, edgecolors="none", label="policy")
    if rows.size:
        axes.scatter(columns[-1:], rows[-1:], marker="o", s=60, facecolors="none",
                     edgecolors="red", linewidths=1.5, label="last")
    if next_position is not None:
        row, column = next_position
        axes.scatter([column], [row], marker="*", s=90, c="red", label="next")
        if rows.size:
            axes.annotate("", xy=(column, row), xytext=(columns[-1], rows[-1]),
                          arrowprops={"arrowstyle": "->", "color": "red", "lw": 1.2})


def draw_learning_curve(axes: Axes, decisions: Mapping[str, np.ndarray]) -> None:
    """Mean uncertainty over all patches (with +- one std band) and next-step uncertainty.

    Reads the ``decisions`` stream fields ``step``, ``uncertainty_mean``,
    ``uncertainty_std`` and ``next_uncertainty`` (scalarizer units).
    """
    axes.set_title("learning curve", fontsize="medium")
    axes.set_xlabel("step")
    axes.set_ylabel("uncertainty (scalarizer units)")
    if "step" not in decisions or not len(decisions["step"]):
        axes.text(0.5, 0.5, "no decisions yet", ha="center", va="center",
                  transform=axes.transAxes, color="0.4")
        return
    steps = np.asarray(decisions["step"], dtype=float)
    mean = np.asarray(decisions.get("uncertainty_mean", np.full(steps.size, np.nan)), float)
    spread = np.asarray(decisions.get("uncertainty_std", np.zeros(steps.size)), float)
    following = np.asarray(decisions.get("next_uncertainty", np.full(steps.size, np.nan)),
                           float)
    axes.plot(steps, mean, color="C0", label="mean over patches")
    axes.fill_between(steps, mean - spread, mean + spread, color="C0", alpha=0.25,
                      label="+- std over patches")
    axes.plot(steps, following, ".-", color="C3", markersize=3, linewidth=0.8,
              label="at the next position")
    axes.legend(fontsize="small", loc="upper right")


def draw_best_so_far(
    axes: Axes,
    measurements: Mapping[str, np.ndarray],
    truth: np.ndarray | None = None,
    maximize: bool = True,
) -> None:
    """Best measured scalarizer value by step, with the map's best when known.

    Reads the ``measurements`` stream fields ``step`` and
    ``scalarizer_value``; seed points have negative steps. With ``truth``
    (the true scalarizer map) a dashed line marks its best value.
    """
    axes.set_title("best so far", fontsize="medium")
    axes.set_xlabel("step")
    axes.set_ylabel("scalarizer value")
    if "scalarizer_value" not in measurements or not len(measurements["scalarizer_value"]):
        axes.text(0.5, 0.5, "no measurements yet", ha="center", va="center",
                  transform=axes.transAxes, color="0.4")
        return
    values = np.asarray(measurements["scalarizer_value"], dtype=float)
    steps = np.asarray(measurements.get("step", np.arange(values.size)), dtype=float)
    axes.plot(steps, best_so_far(values, maximize=maximize), drawstyle="steps-post",
              color="C2", label="best measured")
    axes.plot(steps, values, ".", color="0.5", markersize=3, label="measured")
    if truth is not None and np.any(np.isfinite(truth)):
        best = np.nanmax(truth) if maximize else np.nanmin(truth)
        axes.axhline(best, color="k", linestyle="--", linewidth=0.8, label="best in map")
    axes.legend(fontsize="small", loc="lower right" if maximize else "upper right")


def experiment_summary_figure(
    record: Any,
    agent: Any,
    truth: np.ndarray | None = None,
    title: str = "",
    maximize: bool = True,
) -> Figure:
    """One figure that summarises an experiment.

    Top row: the HAADF image with the trajectory (seed points as crosses,
    the last position circled), the predicted mean map, the uncertainty
    (posterior standard deviation) map and, when ``truth`` is given, the
    true scalarizer map. Bottom row: the learning curve (uncertainty mean
    +- std over all patches and the uncertainty at the next position, per
    step) and the best scalarizer value measured so far.

    Parameters
    ----------
    record : RunRecord
        The run, read back with :func:`hae_bluesky.analysis.runs.load_run`
        (streams ``haadf``, ``measurements`` and ``decisions``).
    agent : DKLAgent or None
        The agent after the run: ``agent.patches`` and ``agent.predict()``
        (``.mean``, ``.std``, (M,) in patch-index order). None draws the
        model panels empty.
    truth : numpy.ndarray, optional
        (ny, nx) true scalarizer value at every pixel of the HAADF image,
        NaN where unknown (simulation only).
    title : str
        Figure title.
    maximize : bool
        True when larger scalarizer values are better (for best-so-far).

    Returns
    -------
    Figure
        Axes labels name the panels: ``haadf``, ``mean``, ``uncertainty``,
        ``truth`` (only with ``truth``), ``learning_curve``, ``best_so_far``.
    """
    measurements = record.stream("measurements")
    decisions = record.stream("decisions")
    image = haadf_image(record)
    mean_map = uncertainty_map = None
    if agent is not None:
        prediction = agent.predict()
        mean_map = to_image(prediction.mean, agent.patches)
        uncertainty_map = to_image(prediction.std, agent.patches)

    maps = 4 if truth is not None else 3
    figure = Figure(figsize=(4.6 * maps, 8.0), layout="constrained")
    grid = figure.add_gridspec(2, 2 * maps)
    top = [figure.add_subplot(grid[0, 2 * index:2 * index + 2]) for index in range(maps)]
    curve_axes = figure.add_subplot(grid[1, :maps])
    best_axes = figure.add_subplot(grid[1, maps:])

    draw_map(figure, top[0], image, "HAADF and trajectory", cmap="gray", label="counts")
    if "row" in measurements:
        draw_trajectory(top[0], measurements["row"], measurements["column"],
                        measurements.get("seed_point"))
    draw_map(figure, top[1], mean_map, "predicted mean", label="scalarizer value")
    draw_map(figure, top[2], uncertainty_map, "uncertainty", cmap="magma",
             label="posterior std")
    if truth is not None:
        draw_map(figure, top[3], np.asarray(truth, dtype=float), "true scalarizer",
                 label="scalarizer value")
    for axes in top[1:]:
        # The maps share the HAADF pixel grid: one row label is enough, and
        # the others would collide with the colour bar labels beside them.
        axes.set_ylabel("")
    draw_learning_curve(curve_axes, decisions)
    draw_best_so_far(best_axes, measurements, truth, maximize=maximize)

    names = ["haadf", "mean", "uncertainty", "truth"][:maps]
    for axes, name in zip([*top, curve_axes, best_axes],
                          [*names, "learning_curve", "best_so_far"], strict=True):
        axes.set_label(name)
    figure.suptitle(title or _default_title(record))
    return figure


def _default_title(record: Any) -> str:
    hae = record.start.get("hae", {})
    parts = [f"run {str(record.uid)[:8]}"]
    if "policy" in hae:
        policy = hae["policy"]
        kind = policy.get("kind", policy) if isinstance(policy, dict) else policy
        parts.append(f"policy {kind}")
    if "patch_size" in hae:
        parts.append(f"N = {hae['patch_size']}")
    return ", ".join(parts)


def feature_space_figure(
    latents: np.ndarray,
    trajectory: np.ndarray,
    aggregation_points: Sequence[Any] = (),
    title: str = "feature space",
) -> Figure:
    """The trajectory drawn in a 2-D latent space, with its aggregation points.

    Parameters
    ----------
    latents : numpy.ndarray
        (M, 2) latent position of every patch (grey background).
    trajectory : numpy.ndarray
        (T, 2) latent positions of the visited patches, in order; drawn as a
        line coloured from dark (first) to bright (last).
    aggregation_points : sequence of AggregationPoint
        Drawn as stars labelled with their number of visits.
    title : str
        Axes title.

    Returns
    -------
    Figure
        One axes labelled ``feature_space`` (and its colour bar).

    Raises
    ------
    ValueError
        If the latent positions are not two-dimensional.
    """
    latents = np.asarray(latents, dtype=float)
    trajectory = np.asarray(trajectory, dtype=float).reshape(-1, latents.shape[-1])
    if latents.ndim != 2 or latents.shape[1] != 2:
        raise ValueError(
            f"feature-space figure needs (M, 2) latent positions, got {latents.shape}"
        )

    figure = Figure(figsize=(6.0, 5.0), layout="constrained")
    axes = figure.add_subplot()
    axes.set_label("feature_space")
    axes.scatter(latents[:, 0], latents[:, 1], s=3, c="0.8", edgecolors="none",
                 label="all patches")
    if len(trajectory):
        axes.plot(trajectory[:, 0], trajectory[:, 1], "-", color="0.3", linewidth=0.5)
        shown = axes.scatter(trajectory[:, 0], trajectory[:, 1],
                             c=np.arange(len(trajectory)), cmap="plasma", s=12,
                             label="trajectory")
        figure.colorbar(shown, ax=axes, label="step (order of measurement)")
    for number, point in enumerate(aggregation_points):
        x, y = point.location
        axes.scatter([x], [y], marker="*", s=160, c="red", edgecolors="k",
                     label="aggregation points" if number == 0 else None)
        axes.annotate(f"{point.visits}", (x, y), textcoords="offset points",
                      xytext=(6, 6), fontsize="small")
    axes.set_xlabel("z1")
    axes.set_ylabel("z2")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small", loc="best")
    return figure


def embedding_figure(embeddings: np.ndarray, patches: PatchGrid,
                     title: str = "embedding") -> Figure:
    """Each embedding dimension drawn as an image over the patch centres.

    Parameters
    ----------
    embeddings : numpy.ndarray
        (M, d) embedding (DKL feature extractor output or rVAE latents) of
        every patch, in patch-index order.
    patches : Patches or agent.patches
        Where the patches sit (see :func:`to_image`).
    title : str
        Figure title.

    Returns
    -------
    Figure
        d axes labelled ``dimension 1`` .. ``dimension d`` (and their colour
        bars), at most four per row.

    Raises
    ------
    ValueError
        If ``embeddings`` is not (M, d) with one row per patch.
    """
    embeddings = np.asarray(embeddings, dtype=float)
    if embeddings.ndim == 1:
        embeddings = embeddings[:, None]
    if embeddings.ndim != 2 or embeddings.shape[0] != np.size(patches.rows):
        raise ValueError(
            f"embeddings must be (M, d) with M = {np.size(patches.rows)} patches, got "
            f"{embeddings.shape}"
        )
    dimensions = embeddings.shape[1]
    columns = min(dimensions, 4)
    rows = -(-dimensions // columns)
    figure = Figure(figsize=(3.8 * columns, 3.4 * rows), layout="constrained")
    for index in range(dimensions):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.set_label(f"dimension {index + 1}")
        draw_map(figure, axes, to_image(embeddings[:, index], patches),
                 f"dimension {index + 1}", cmap="coolwarm")
    figure.suptitle(title)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure to a PNG file, creating its folder.

    Parameters
    ----------
    figure : Figure
        The figure.
    path : str or Path
        Destination; ``.png`` is added when the name has no suffix.
    dpi : int
        Resolution in dots per inch.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    logger.debug("figure written to %s", path)
    return path
