"""The DKL agent: measurements in, the next beam position out.

:class:`DKLAgent` holds everything one experiment learns: the HAADF patches
(the candidates), the measured positions and spectra, the DKL model and the
acquisition policy. It is plain Python, numpy, torch and gpytorch; the
Bluesky plan talks to it through a callback.

One step::

    agent.ingest([{"row": r, "column": c, "spectrum": s}])   # or "value"
    decision, = agent.suggest(1)        # fit, predict, score, choose
    agent.report()                      # plain values for the documents

Operator changes (:meth:`~DKLAgent.set_policy`,
:meth:`~DKLAgent.set_scalarizer`, :meth:`~DKLAgent.set_patch_size`,
:meth:`~DKLAgent.add_points_of_interest`) may come from any thread. They are
validated at once (a bad request raises ``ValueError`` and changes nothing),
queued under a small lock that fitting never holds, and applied at the start
of the next :meth:`~DKLAgent.suggest`, so a running fit is never disturbed.

Measurements are kept by image pixel, not by patch index, so that a new patch
size can re-train on every position measured so far. A measurement whose
spectrum is not finite (or whose value is NaN) is kept, flagged as bad and
left out of training.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from hae_bluesky.agent.model import DeepKernelModel, FitResult, ModelSettings, Posterior
from hae_bluesky.agent.policy import Policy, policy_from_spec
from hae_bluesky.data.patches import Patches, extract_patches
from hae_bluesky.data.scalarizers import Scalarizer, scalarizer_from_spec

logger = logging.getLogger(__name__)

__all__ = ["DKLAgent", "Decision", "Measurement"]

STATE_VERSION = 1


@dataclass
class Decision:
    """Where to measure next, and why.

    Attributes
    ----------
    step : int
        Number of measurements the agent had when it decided.
    patch_index : int
        Candidate index in :attr:`DKLAgent.patches`.
    row, column : int
        Pixel of the HAADF image (the patch centre).
    x_nm, y_nm : float
        Beam position in nm.
    acquisition_value : float
        The policy's score there (NaN for a point of interest).
    mean, std : float
        Predicted scalarizer value and its standard deviation there
        (scalarizer units).
    policy : dict
        Policy spec that made the decision.
    source : str
        ``"policy"``, ``"point_of_interest"`` or ``"no_data"`` (random
        choice while no good measurement exists).
    """

    step: int
    patch_index: int
    row: int
    column: int
    x_nm: float
    y_nm: float
    acquisition_value: float
    mean: float
    std: float
    policy: dict[str, Any]
    source: str = "policy"

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as plain JSON-able values."""
        return asdict(self)


@dataclass
class Measurement:
    """One measured position as the agent keeps it.

    ``spectrum`` is ``None`` when only a value was given; ``bad`` marks a
    measurement left out of training, ``reason`` says why.
    """

    row: int
    column: int
    value: float
    spectrum: np.ndarray | None = None
    bad: bool = False
    reason: str = ""

    def summary(self) -> dict[str, Any]:
        """Plain values (no spectrum) for callers and logs."""
        return {"row": self.row, "column": self.column, "value": self.value,
                "bad": self.bad, "reason": self.reason}


@dataclass
class _Pending:
    """Operator changes waiting for the next step (latest request wins)."""

    policy: Policy | None = None
    scalarizer: Scalarizer | None = None
    patch_size: int | None = None
    points: list[tuple[int, int]] = field(default_factory=list)

    def empty(self) -> bool:
        return (self.policy is None and self.scalarizer is None
                and self.patch_size is None and not self.points)


class DKLAgent:
    """Deep kernel learning agent over the patches of one HAADF image.

    Parameters
    ----------
    haadf : numpy.ndarray
        (ny, nx) HAADF image; every whole N x N patch is a candidate.
    energy_axis : numpy.ndarray
        (nE,) energy of each spectrum channel in eV.
    scalarizer : dict or Scalarizer
        What to learn, e.g. ``{"kind": "band_integral", "window": [930, 1000]}``.
    pixel_size_nm : float
        HAADF pixel size in nm (beam positions).
    patch_size : int
        N, patch side in pixels.
    policy : dict or Policy or str
        Acquisition policy spec (default ``{"kind": "ei", "xi": 0.01}``).
    seed : int
        Seed of the network initialisation, Thompson samples and random choices.
    embedding_dim : int
        Dimension of the DKL embedding.
    normalisation : {"image", "patch", "none"}
        Patch normalisation (see :func:`hae_bluesky.data.extract_patches`).
    refit_from_scratch : bool
        Re-initialise the network at every step instead of warm-starting.
    model_settings : dict or ModelSettings, optional
        Overrides of :class:`~hae_bluesky.agent.model.ModelSettings` fields.

    Raises
    ------
    ValueError
        For an image, energy axis, scalarizer window, patch size or policy
        that cannot work.
    """

    def __init__(
        self,
        haadf: np.ndarray,
        energy_axis: np.ndarray,
        scalarizer: Mapping[str, Any] | Scalarizer,
        *,
        pixel_size_nm: float = 1.0,
        patch_size: int = 5,
        policy: Mapping[str, Any] | Policy | str | None = None,
        seed: int = 0,
        embedding_dim: int = 2,
        normalisation: str = "image",
        refit_from_scratch: bool = False,
        model_settings: Mapping[str, Any] | ModelSettings | None = None,
    ) -> None:
        self.haadf = np.array(haadf, dtype=float)
        if self.haadf.ndim != 2:
            raise ValueError(f"HAADF image must be 2-D (ny, nx), got shape {self.haadf.shape}")
        self.energy_axis = np.array(energy_axis, dtype=float)
        if self.energy_axis.ndim != 1 or self.energy_axis.size < 2:
            raise ValueError("energy axis must be 1-D with at least two channels")
        if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
            raise ValueError(f"pixel size must be a positive number of nm, got {pixel_size_nm}")
        self.pixel_size_nm = float(pixel_size_nm)
        self.seed = int(seed)
        self.embedding_dim = int(embedding_dim)
        self.normalisation = normalisation
        self.refit_from_scratch = bool(refit_from_scratch)
        self.model_settings = _settings(model_settings)

        self._scalarizer = self._checked_scalarizer(scalarizer)
        self._policy = policy_from_spec(policy if policy is not None else {"kind": "ei"})
        self._patch_size = self._checked_patch_size(patch_size)
        self.patches: Patches = extract_patches(self.haadf, self._patch_size,
                                                self.pixel_size_nm, normalisation)
        self.model = DeepKernelModel(self.patches.flat(), self.embedding_dim,
                                     self.model_settings, self.seed)

        self._lock = threading.RLock()          # model, measurements, decisions
        self._pending_lock = threading.Lock()   # operator changes only
        self._pending = _Pending()
        self._points: deque[tuple[int, int]] = deque()
        self._measurements: list[Measurement] = []
        self._measured_pixels: set[tuple[int, int]] = set()
        self._rng = np.random.default_rng(self.seed)
        self._posterior: Posterior | None = None
        self._acquisition: np.ndarray | None = None
        self._fit: FitResult | None = None
        self._fitted_on = -1
        self._last: Decision | None = None
        self._off_policy = False
        self._fallback: str | None = None

    # ---------------------------------------------------------------- properties

    @property
    def scalarizer(self) -> Scalarizer:
        """The scalarizer in use (callable on spectra and the energy axis)."""
        return self._scalarizer

    @property
    def policy(self) -> Policy:
        """The policy in use."""
        return self._policy

    @property
    def patch_size(self) -> int:
        """N of the N x N patches in use."""
        return self._patch_size

    @property
    def measurements(self) -> list[Measurement]:
        """Every measurement ingested, in order (bad ones included)."""
        with self._lock:
            return list(self._measurements)

    @property
    def step(self) -> int:
        """Number of measurements ingested."""
        return len(self._measurements)

    # ----------------------------------------------------------------- checking

    def _checked_scalarizer(self, spec: Mapping[str, Any] | Scalarizer) -> Scalarizer:
        scalarizer = scalarizer_from_spec(spec)
        scalarizer.validate(self.energy_axis)
        return scalarizer

    def _checked_patch_size(self, patch_size: Any) -> int:
        try:
            size = int(patch_size)
        except (TypeError, ValueError):
            raise ValueError(
                f"patch size must be a positive integer, got {patch_size!r}") from None
        if size != patch_size or size < 1:
            raise ValueError(f"patch size must be a positive integer, got {patch_size!r}")
        ny, nx = self.haadf.shape
        if size > min(ny, nx):
            raise ValueError(f"patch size {size} is larger than the {ny} x {nx} HAADF image")
        return size

    def _pixel_of(self, reading: Mapping[str, Any]) -> tuple[int, int]:
        ny, nx = self.haadf.shape
        if "patch_index" in reading:
            index = int(reading["patch_index"])
            if not 0 <= index < len(self.patches):
                raise ValueError(f"patch index {index} is not in 0..{len(self.patches) - 1}")
            return int(self.patches.rows[index]), int(self.patches.columns[index])
        if "row" in reading and "column" in reading:
            row, column = int(reading["row"]), int(reading["column"])
            if not (0 <= row < ny and 0 <= column < nx):
                raise ValueError(f"pixel (row={row}, column={column}) is off the "
                                 f"{ny} x {nx} image")
            return row, column
        if "position_nm" in reading:
            return self._pixel_at(*reading["position_nm"])
        raise ValueError("a reading needs 'patch_index', 'row' and 'column', or "
                         f"'position_nm'; got keys {sorted(reading)}")

    def _pixel_at(self, x_nm: float, y_nm: float) -> tuple[int, int]:
        ny, nx = self.haadf.shape
        size = self.pixel_size_nm
        x_nm, y_nm = float(x_nm), float(y_nm)
        if not (np.isfinite(x_nm) and np.isfinite(y_nm)):
            raise ValueError(f"beam position ({x_nm}, {y_nm}) nm is not finite")
        column, row = round(x_nm / size), round(y_nm / size)
        if not (0 <= row < ny and 0 <= column < nx):
            raise ValueError(
                f"beam position ({x_nm:.4g}, {y_nm:.4g}) nm lies outside the field of view "
                f"0-{(nx - 1) * size:.4g} nm (x) by 0-{(ny - 1) * size:.4g} nm (y)"
            )
        return row, column

    def _patch_index(self, row: int, column: int) -> int | None:
        """Patch index centred on a pixel, or None near the edge."""
        try:
            return self.patches.index_of(row, column)
        except ValueError:
            return None

    # ----------------------------------------------------------------- ingesting

    def ingest(self, readings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add measurements.

        Parameters
        ----------
        readings : iterable of dict
            Each gives a position (``patch_index``, ``row`` and ``column``, or
            ``position_nm`` as ``(x, y)``) and either a ``spectrum`` (nE,) on
            the agent's energy axis or a scalarizer ``value``.

        Returns
        -------
        list of dict
            Per reading: row, column, value, bad, reason.

        Raises
        ------
        ValueError
            If a reading has no usable position or neither spectrum nor
            value, or a spectrum of the wrong length. Every reading is checked
            before any is added, so a bad batch adds nothing.
        """
        checked = []
        for reading in readings:
            try:
                row, column = self._pixel_of(reading)
            except TypeError as error:
                raise ValueError(f"a reading has a malformed position ({error}); give "
                                 "'patch_index', 'row' and 'column', or 'position_nm' "
                                 "as (x, y)") from None
            if "spectrum" in reading:
                spectrum = np.array(reading["spectrum"], dtype=float).reshape(-1)
                if spectrum.size != self.energy_axis.size:
                    raise ValueError(f"spectrum has {spectrum.size} channels, the energy axis "
                                     f"{self.energy_axis.size}")
                checked.append((row, column, spectrum, None))
            elif "value" in reading:
                try:
                    value = float(reading["value"])
                except (TypeError, ValueError):
                    raise ValueError("a reading's 'value' must be a number, got "
                                     f"{reading['value']!r}") from None
                checked.append((row, column, None, value))
            else:
                raise ValueError("a reading needs a 'spectrum' or a 'value'")

        added = []
        with self._lock:
            for row, column, spectrum, value in checked:
                measurement = Measurement(row, column, np.nan, spectrum)
                self._score(measurement, value)
                self._measurements.append(measurement)
                self._measured_pixels.add((row, column))
                added.append(measurement.summary())
        return added

    def _score(self, measurement: Measurement, value: float | None = None) -> None:
        """Set the value of a measurement from its spectrum (or the given value)."""
        if measurement.spectrum is not None:
            if not np.all(np.isfinite(measurement.spectrum)):
                measurement.value, measurement.bad = np.nan, True
                measurement.reason = "spectrum has NaN or inf counts"
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    measurement.value = float(self._scalarizer(measurement.spectrum,
                                                               self.energy_axis))
                measurement.bad = not np.isfinite(measurement.value)
                measurement.reason = "scalarizer gave no finite value" if measurement.bad else ""
        else:
            measurement.value = float(value)
            measurement.bad = not np.isfinite(measurement.value)
            measurement.reason = "value is not finite" if measurement.bad else ""
        if measurement.bad:
            logger.warning("measurement at pixel (%d, %d) is bad (%s); it is kept and left "
                           "out of training", measurement.row, measurement.column,
                           measurement.reason)

    # ---------------------------------------------------------- operator changes

    def set_policy(self, spec: Mapping[str, Any] | Policy | str) -> dict[str, Any]:
        """Change the policy from the next step on.

        Returns
        -------
        dict
            ``{"parameter": "policy", "before": spec, "after": spec}``.

        Raises
        ------
        ValueError
            For an unknown kind or parameter (nothing changes).
        """
        policy = policy_from_spec(spec)
        with self._pending_lock:
            before = (self._pending.policy or self._policy).to_spec()
            self._pending.policy = policy
        return {"parameter": "policy", "before": before, "after": policy.to_spec()}

    def set_scalarizer(self, spec: Mapping[str, Any] | Scalarizer) -> dict[str, Any]:
        """Change the scalarizer from the next step on; measured spectra are re-scalarised.

        Raises
        ------
        ValueError
            For an unknown kind, a window outside the energy axis, or when a
            measurement was ingested as a value without its spectrum (it could
            not be re-scalarised).
        """
        scalarizer = self._checked_scalarizer(spec)
        with self._lock:
            without = sum(m.spectrum is None and not m.bad for m in self._measurements)
        if without:
            raise ValueError(f"{without} measurement(s) were given as values without "
                             "spectra; they cannot be re-scalarised")
        with self._pending_lock:
            before = (self._pending.scalarizer or self._scalarizer).to_spec()
            self._pending.scalarizer = scalarizer
        return {"parameter": "scalarizer", "before": before, "after": scalarizer.to_spec()}

    def set_patch_size(self, patch_size: int) -> dict[str, Any]:
        """Change the patch size from the next step on (re-train; reported off-policy).

        Raises
        ------
        ValueError
            For a size that is not a positive integer or is larger than the image.
        """
        size = self._checked_patch_size(patch_size)
        with self._pending_lock:
            before = self._pending.patch_size or self._patch_size
            self._pending.patch_size = size
        return {"parameter": "patch_size", "before": before, "after": size}

    def add_points_of_interest(self, positions_nm: Sequence[Sequence[float]]
                               ) -> dict[str, Any]:
        """Queue beam positions (x, y) in nm to be measured ahead of the policy.

        Each goes to the nearest candidate patch centre at the step it is
        taken. Positions already measured are skipped then.

        Raises
        ------
        ValueError
            For a malformed list or a position outside the field of view
            (nothing is queued).
        """
        try:
            pairs = [(float(x), float(y)) for x, y in positions_nm]
        except (TypeError, ValueError):
            raise ValueError("points of interest are a list of (x_nm, y_nm) pairs, got "
                             f"{positions_nm!r}") from None
        if not pairs:
            raise ValueError("no points of interest given")
        pixels = [self._pixel_at(x, y) for x, y in pairs]
        with self._pending_lock:
            before = self._queued_points_nm()
            self._pending.points.extend(pixels)
            after = self._queued_points_nm()
        return {"parameter": "points_of_interest", "before": before, "after": after}

    def _queued_points_nm(self) -> list[list[float]]:
        size = self.pixel_size_nm
        return [[column * size, row * size]
                for row, column in [*self._points, *self._pending.points]]

    def has_pending_changes(self) -> bool:
        """True when an operator change waits for the next step."""
        with self._pending_lock:
            return not self._pending.empty()

    def _apply_pending(self) -> list[str]:
        with self._pending_lock:
            pending, self._pending = self._pending, _Pending()
        applied = []
        if pending.policy is not None:
            self._policy = pending.policy
            applied.append("policy")
        if pending.scalarizer is not None:
            self._scalarizer = pending.scalarizer
            for measurement in self._measurements:
                if measurement.spectrum is not None:
                    self._score(measurement)
            self._fitted_on = -1
            applied.append("scalarizer")
        if pending.patch_size is not None and pending.patch_size != self._patch_size:
            self._rebuild(pending.patch_size)
            self._off_policy = True
            applied.append("patch_size")
        if pending.points:
            self._points.extend(pending.points)
            applied.append("points_of_interest")
        if applied:
            logger.info("operator changes applied at step %d: %s", self.step, ", ".join(applied))
        return applied

    def _rebuild(self, patch_size: int) -> None:
        self._patch_size = patch_size
        self.patches = extract_patches(self.haadf, patch_size, self.pixel_size_nm,
                                       self.normalisation)
        self.model = DeepKernelModel(self.patches.flat(), self.embedding_dim,
                                     self.model_settings, self.seed)
        self._posterior = None
        self._acquisition = None
        self._fitted_on = -1

    # ------------------------------------------------------------------ deciding

    def _training_set(self) -> tuple[np.ndarray, np.ndarray]:
        indices, values = [], []
        for measurement in self._measurements:
            if measurement.bad:
                continue
            index = self._patch_index(measurement.row, measurement.column)
            if index is not None:
                indices.append(index)
                values.append(measurement.value)
        return np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=float)

    def _refresh(self) -> None:
        """Fit and predict if anything changed since the last fit."""
        if self._fitted_on == len(self._measurements) and self._posterior is not None:
            return
        indices, values = self._training_set()
        self._fitted_on = len(self._measurements)
        if indices.size == 0:
            self._fit, self._posterior, self._fallback = None, None, "no_data"
            return
        warm = not self.refit_from_scratch
        self._fit = self.model.fit(indices, values, warm=warm)
        self._posterior = self.model.predict()
        self._fallback = self._fit.fallback

    def _available(self, taken: Iterable[int] = ()) -> np.ndarray:
        available = np.ones(len(self.patches), dtype=bool)
        for row, column in self._measured_pixels:
            index = self._patch_index(row, column)
            if index is not None:
                available[index] = False
        available[list(taken)] = False
        return available

    def _decision(self, index: int, value: float, source: str) -> Decision:
        patches = self.patches
        mean = std = np.nan
        if self._posterior is not None:
            mean = float(self._posterior.mean[index])
            std = float(self._posterior.std[index])
        x_nm, y_nm = patches.positions_nm[index]
        return Decision(self.step, int(index), int(patches.rows[index]),
                        int(patches.columns[index]), float(x_nm), float(y_nm),
                        float(value), mean, std, self._policy.to_spec(), source)

    def suggest(self, n: int = 1) -> list[Decision]:
        """Choose the next ``n`` positions (fewer when fewer candidates are left).

        Pending operator changes are applied first; queued points of interest
        come before the policy's choices. A batch (``n > 1``) conditions each
        later choice on the earlier ones with the model's posterior mean
        ("kriging believer"), so the batch spreads out.

        Never raises for numerical trouble: a failed fit falls back (see
        :class:`~hae_bluesky.agent.model.DeepKernelModel`) and is reported.

        Returns
        -------
        list of Decision
            Empty when every candidate has been measured.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"number of suggestions must be a whole number, at least 1, "
                             f"got {n!r}")
        with self._lock:
            self._off_policy = False
            self._apply_pending()
            self._refresh()
            chosen: list[Decision] = []
            taken: list[int] = []
            while self._points and len(chosen) < n:
                row, column = self._points.popleft()
                index = self.patches.nearest_index(column * self.pixel_size_nm,
                                                   row * self.pixel_size_nm)
                if self._available(taken)[index]:
                    chosen.append(self._decision(index, np.nan, "point_of_interest"))
                    taken.append(index)
            std = None
            while len(chosen) < n:
                available = self._available(taken)
                if not available.any():
                    break
                if self._posterior is None:
                    index = int(self._rng.choice(np.flatnonzero(available)))
                    self._acquisition = None
                    chosen.append(self._decision(index, np.nan, "no_data"))
                    taken.append(index)
                    continue
                if taken and self._policy.needs_model:
                    std = self.model.fantasy_std(taken)
                scores = self._scores(available, std)
                candidates = np.flatnonzero(available)
                index = int(candidates[np.argmax(scores[candidates])])
                chosen.append(self._decision(index, float(scores[index]), "policy"))
                taken.append(index)
            if chosen:
                self._last = chosen[0]
            return chosen

    def _scores(self, available: np.ndarray, std: np.ndarray | None) -> np.ndarray:
        posterior = self._posterior
        model = self.model
        scale = model.target_scale
        mean = np.asarray(model.standardise(posterior.mean))
        std = (posterior.std if std is None else std) / scale
        best = self._best_measured()
        best = float(model.standardise(best)) if best is not None else float(mean.max())
        sample = None
        if self._policy.needs_sample:
            samples = model.predict(n_samples=1, generator=self._rng).samples
            sample = np.asarray(model.standardise(samples[0]))
        values = self._policy.acquisition(mean, std, best, self._rng, sample)
        self._acquisition = np.where(available, values, -np.inf)
        beam = None
        if self._measurements:
            last = self._measurements[-1]
            beam = np.array([last.column, last.row], dtype=float) * self.pixel_size_nm
        measured = np.array([[c, r] for r, c in self._measured_pixels],
                            dtype=float).reshape(-1, 2) * self.pixel_size_nm
        ny, nx = self.haadf.shape
        diagonal = float(np.hypot(nx - 1, ny - 1)) * self.pixel_size_nm
        return self._policy.scores(values, available, self.patches.positions_nm, measured,
                                   beam, diagonal)

    def _best_measured(self) -> float | None:
        good = [m.value for m in self._measurements if not m.bad]
        return max(good) if good else None

    # ------------------------------------------------------------------ reading

    def predict(self) -> Posterior:
        """Posterior mean and standard deviation at every candidate (scalarizer units).

        Before any good measurement, the mean is NaN and the std infinite.
        """
        with self._lock:
            self._refresh()
            if self._posterior is None:
                count = len(self.patches)
                return Posterior(np.full(count, np.nan), np.full(count, np.inf))
            return self._posterior

    def acquisition_map(self) -> np.ndarray:
        """The last step's raw acquisition values (M,); -inf where not available."""
        with self._lock:
            if self._acquisition is None:
                return np.full(len(self.patches), np.nan)
            return self._acquisition.copy()

    def embeddings(self) -> np.ndarray:
        """DKL embedding of every candidate patch, (M, embedding_dim)."""
        with self._lock:
            return self.model.embeddings()

    def report(self) -> dict[str, Any]:
        """Plain JSON-able values describing the current step.

        Keys: step, n_measured, n_bad, uncertainty_mean and uncertainty_std
        (mean and standard deviation over all candidates of the predictive
        standard deviation), next_uncertainty (predictive std at the last
        suggested position), best_value, best_row, best_column (best good
        measurement), training_loss, fit_seconds, fit_iterations, fallback
        (``None``, ``"jitter"``, ``"float64"``, ``"reinitialise"``,
        ``"prior"`` or ``"no_data"``), policy and scalarizer specs,
        patch_size, off_policy (the step on which a new patch size was
        applied: the model is re-trained on positions chosen under another
        patch size) and points_of_interest (still queued).
        """
        with self._lock:
            good = [m for m in self._measurements if not m.bad]
            best = max(good, key=lambda m: m.value) if good else None
            std = self._posterior.std if self._posterior is not None else None
            fit = self._fit
            with self._pending_lock:
                queued = self._queued_points_nm()
            return {
                "step": self.step,
                "n_measured": len(self._measurements),
                "n_bad": len(self._measurements) - len(good),
                "uncertainty_mean": _plain(np.mean(std)) if std is not None else None,
                "uncertainty_std": _plain(np.std(std)) if std is not None else None,
                "next_uncertainty": _plain(self._last.std) if self._last else None,
                "best_value": best.value if best else None,
                "best_row": best.row if best else None,
                "best_column": best.column if best else None,
                "training_loss": _plain(fit.loss) if fit else None,
                "fit_seconds": fit.seconds if fit else None,
                "fit_iterations": fit.iterations if fit else None,
                "fallback": self._fallback,
                "policy": self._policy.to_spec(),
                "scalarizer": self._scalarizer.to_spec(),
                "patch_size": self._patch_size,
                "off_policy": self._off_policy,
                "points_of_interest": queued,
            }

    # -------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: settings, measurements, model weights.

        Values are numpy arrays and plain Python; save with ``torch.save`` or
        ``numpy.savez`` (arrays) as you prefer.
        """
        with self._lock:
            with self._pending_lock:
                pending = self._pending
                points = [*self._points, *pending.points]
            return {
                "version": STATE_VERSION,
                "haadf": self.haadf.copy(),
                "energy_axis": self.energy_axis.copy(),
                "pixel_size_nm": self.pixel_size_nm,
                "patch_size": pending.patch_size or self._patch_size,
                "model_patch_size": self._patch_size,
                "policy": (pending.policy or self._policy).to_spec(),
                "scalarizer": (pending.scalarizer or self._scalarizer).to_spec(),
                "model_scalarizer": self._scalarizer.to_spec(),
                "seed": self.seed,
                "embedding_dim": self.embedding_dim,
                "normalisation": self.normalisation,
                "refit_from_scratch": self.refit_from_scratch,
                "model_settings": asdict(self.model_settings),
                "measurements": [{**m.summary(), "spectrum": None if m.spectrum is None
                                  else m.spectrum.copy()} for m in self._measurements],
                "points_of_interest": [list(p) for p in points],
                "model": self.model.state_dict(),
                "fitted_on": self._fitted_on,
                "rng": self._rng.bit_generator.state,
            }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **overrides: Any) -> DKLAgent:
        """Rebuild an agent from :meth:`state_dict`.

        Keyword overrides (``policy=...``, ``scalarizer=...``) seed a new
        experiment from an earlier one with other settings; without them the
        agent continues exactly where it stopped.

        Raises
        ------
        ValueError
            For a state of another version or inconsistent content.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"agent state version {state.get('version')!r} is not "
                             f"{STATE_VERSION}")
        options = {
            "pixel_size_nm": state["pixel_size_nm"],
            "patch_size": state["model_patch_size"],
            "policy": state["policy"],
            "seed": state["seed"],
            "embedding_dim": state["embedding_dim"],
            "normalisation": state["normalisation"],
            "refit_from_scratch": state["refit_from_scratch"],
            "model_settings": ModelSettings(**{
                key: tuple(value) if key == "hidden" else value
                for key, value in state["model_settings"].items()}),
        }
        rescalarise = "scalarizer" in overrides
        scored_with = state.get("model_scalarizer", state["scalarizer"])
        scalarizer = overrides.pop("scalarizer", scored_with)
        options.update(overrides)
        agent = cls(state["haadf"], state["energy_axis"], scalarizer, **options)
        with agent._lock:
            for saved in state["measurements"]:
                spectrum = saved["spectrum"]
                measurement = Measurement(int(saved["row"]), int(saved["column"]),
                                          float(saved["value"]),
                                          None if spectrum is None else np.asarray(spectrum),
                                          bool(saved["bad"]), str(saved["reason"]))
                if spectrum is not None and rescalarise:
                    agent._score(measurement)
                agent._measurements.append(measurement)
                agent._measured_pixels.add((measurement.row, measurement.column))
            agent._points.extend(tuple(p) for p in state["points_of_interest"])
            if not overrides and not rescalarise:
                agent.model.load_state_dict(state["model"])
                agent._rng.bit_generator.state = state["rng"]
                if agent.model.fitted:
                    agent._posterior = agent.model.predict()
                    agent._fitted_on = state.get("fitted_on", len(agent._measurements))
            if not rescalarise and state["scalarizer"] != scored_with:
                agent.set_scalarizer(state["scalarizer"])
            if state["patch_size"] != state["model_patch_size"]:
                agent.set_patch_size(state["patch_size"])
        return agent


def _settings(value: Mapping[str, Any] | ModelSettings | None) -> ModelSettings:
    if value is None:
        return ModelSettings()
    if isinstance(value, ModelSettings):
        return value
    known = {f.name for f in fields(ModelSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown model setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    options = dict(value)
    if "hidden" in options:
        options["hidden"] = tuple(options["hidden"])
    return ModelSettings(**options)


def _plain(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
