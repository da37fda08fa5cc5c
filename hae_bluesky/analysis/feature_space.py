"""Feature space: a rotationally invariant VAE of the patches, and aggregation points.

The feature space of a sample is the latent space of a variational
autoencoder trained on every patch of its HAADF image, before or after the
experiment, without spectra. Drawing the experimental trajectory in it shows
which kinds of structure the policy visited; the local maxima of the density
of visited latent positions (the *aggregation points*) show where it dwelt.

Rotationally invariant VAE (rVAE)
---------------------------------
The encoder maps a flattened patch ``x`` (``N * N`` pixels) to a diagonal
Gaussian posterior over ``(phi, t, z)``: a rotation angle ``phi`` in
radians, optionally a translation ``t = (t_x, t_y)`` in units of the patch
half-width, and the latent position ``z`` (``latent_dim`` values). The
decoder is coordinate based: it renders the patch pixel by pixel from the
pixel's coordinate on a rotated and shifted grid,

``x_hat(c) = g(R(phi) c + t, z)``,   ``R(phi) = [[cos phi, -sin phi], [sin phi, cos phi]]``

where ``c`` runs over the ``N x N`` pixel centres scaled to [-1, 1] and
``g`` is a small network. Because rotation and shift are applied to the
coordinates, ``z`` is free to describe what the patch contains rather than
how it is oriented. The loss per patch is the negative evidence lower bound

``L = sum_c (x(c) - x_hat(c)) ** 2 / (2 s ** 2)
+ KL(q(z) || N(0, 1)) + KL(q(phi) || N(0, s_phi ** 2)) + KL(q(t) || N(0, s_t ** 2))``

with ``s`` the assumed pixel noise (patches are first scaled to [0, 1] by
the minimum and maximum over all patches) and
``KL(N(m, v) || N(0, p ** 2)) = (v / p ** 2 + m ** 2 / p ** 2 - 1 - log(v / p ** 2)) / 2``
per dimension. Latent positions reported for a patch are the posterior
means.

Aggregation points
------------------
The density of visited latent positions ``v_1 .. v_T`` (2-D) is the
Gaussian kernel density estimate

``f(u) = (1 / T) * sum_i N(u; v_i, H)``

with ``H`` from Scott's rule (``scipy.stats.gaussian_kde``), evaluated on a
regular grid. An aggregation point is a grid cell where ``f`` is a local
maximum over its 3 x 3 neighbourhood, at least ``min_relative_density``
times the highest density, and *prominent*: its prominence

``prominence(m) = f(m) - max_paths min_{u on path} f(u)``

(the smallest drop in density on the way from ``m`` to any higher
maximum, found by merging basins across their highest saddle) is at least
``min_prominence`` times the highest density. Scott's rule makes the kernel
narrow across a line of clusters, so a single cluster often shows several
shallow maxima; the prominence test folds them into one. The visits of an
aggregation point are the visited positions in its basin of attraction:
those from whose grid cell steepest ascent of ``f`` on the grid ends at
that maximum or at a shallow maximum folded into it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "AggregationPoint",
    "FeatureSpace",
    "LatentDensity",
    "RotationInvariantVAE",
    "aggregation_points",
    "latent_density",
    "train_rvae",
    "trajectory_latents",
]


def _grid_coordinates(patch_size: int) -> torch.Tensor:
    half = max((patch_size - 1) / 2.0, 1.0)
    axis = (torch.arange(patch_size, dtype=torch.float32) - (patch_size - 1) / 2.0) / half
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.ravel(), y.ravel()], dim=1)


class RotationInvariantVAE(nn.Module):
    """rVAE with a multilayer-perceptron encoder and a coordinate decoder.

    Parameters
    ----------
    patch_size : int
        N; patches are N x N pixels.
    latent_dim : int
        Number of latent dimensions of ``z`` besides the angle (default 2).
    hidden : int
        Width of the hidden layers of encoder and decoder (default 128).
    translation : bool
        Also infer a translation ``t`` of the patch (default False).

    Notes
    -----
    The encoder outputs, per patch, means and log-variances of
    ``[phi, (t_x, t_y), z_1 .. z_d]`` in that order. See the module
    docstring for the decoder and the loss.
    """

    def __init__(
        self,
        patch_size: int,
        latent_dim: int = 2,
        hidden: int = 128,
        translation: bool = False,
    ) -> None:
        super().__init__()
        if patch_size < 1 or latent_dim < 1 or hidden < 1:
            raise ValueError(
                "patch size, latent dimension and hidden width must be positive; got "
                f"{patch_size}, {latent_dim}, {hidden}"
            )
        self.patch_size = int(patch_size)
        self.latent_dim = int(latent_dim)
        self.translation = bool(translation)
        self.transform_dim = 3 if translation else 1
        encoded = self.transform_dim + self.latent_dim

        self.encoder = nn.Sequential(
            nn.Linear(self.patch_size**2, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
        )
        self.encoder_mean = nn.Linear(hidden, encoded)
        self.encoder_log_variance = nn.Linear(hidden, encoded)
        self.coordinate_input = nn.Linear(2, hidden)
        self.latent_input = nn.Linear(self.latent_dim, hidden, bias=False)
        self.decoder = nn.Sequential(
            nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1),
        )
        self.register_buffer("grid", _grid_coordinates(self.patch_size))

    def encode(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return posterior means and log-variances, each (B, transform + latent)."""
        hidden = self.encoder(patches.reshape(patches.shape[0], -1))
        return self.encoder_mean(hidden), self.encoder_log_variance(hidden)

    def split(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                    torch.Tensor]:
        """Split encoded values into angle (B,), translation (B, 2) or None, z (B, d)."""
        angle = encoded[:, 0]
        shift = encoded[:, 1:3] if self.translation else None
        return angle, shift, encoded[:, self.transform_dim:]

    def decode(
        self,
        z: torch.Tensor,
        angle: torch.Tensor | None = None,
        shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Render (B, N, N) patches in [0, 1] from latents, angles (rad) and shifts."""
        batch = z.shape[0]
        if angle is None:
            angle = torch.zeros(batch, dtype=z.dtype)
        cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        x, y = self.grid[:, 0][None, :], self.grid[:, 1][None, :]
        coordinates = torch.stack([cos * x - sin * y, sin * x + cos * y], dim=2)
        if shift is not None:
            coordinates = coordinates + shift[:, None, :]
        hidden = self.coordinate_input(coordinates) + self.latent_input(z)[:, None, :]
        rendered = torch.sigmoid(self.decoder(hidden))
        return rendered.reshape(batch, self.patch_size, self.patch_size)


def _gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor,
                 prior_std: torch.Tensor) -> torch.Tensor:
    ratio = torch.exp(log_variance) / prior_std**2
    return 0.5 * (ratio + mean**2 / prior_std**2 - 1.0 - torch.log(ratio)).sum(dim=1)


@dataclass
class FeatureSpace:
    """A trained rVAE and the latent position of every patch.

    Attributes
    ----------
    latents : numpy.ndarray
        (M, d) posterior-mean latent position ``z`` of every patch.
    angles : numpy.ndarray
        (M,) posterior-mean rotation angle of every patch, radians.
    translations : numpy.ndarray or None
        (M, 2) posterior-mean translation in patch half-widths, or None when
        the model infers no translation.
    loss_history : numpy.ndarray
        (epochs,) mean loss per patch in each epoch (negative ELBO, nats).
    training_seconds : float
        Wall-clock training time in seconds.
    model : RotationInvariantVAE
        The trained network (evaluation mode).
    intensity_range : tuple of float
        (minimum, maximum) of the training patches, used to scale patches to
        [0, 1] before encoding.
    """

    latents: np.ndarray
    angles: np.ndarray
    translations: np.ndarray | None
    loss_history: np.ndarray
    training_seconds: float
    model: RotationInvariantVAE = field(repr=False)
    intensity_range: tuple[float, float] = (0.0, 1.0)

    def encode(self, patches: np.ndarray) -> np.ndarray:
        """Return the (M, d) posterior-mean latent positions of new patches."""
        scaled = _scale(np.asarray(patches, dtype=np.float32), self.intensity_range)
        with torch.no_grad():
            mean, _ = self.model.encode(torch.from_numpy(scaled))
        return self.model.split(mean)[2].numpy().astype(float)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Render (K, N, N) patches, unrotated, in [0, 1], from (K, d) latents."""
        z = torch.as_tensor(np.atleast_2d(latents), dtype=torch.float32)
        with torch.no_grad():
            return self.model.decode(z).numpy()


def _scale(patches: np.ndarray, intensity_range: tuple[float, float]) -> np.ndarray:
    low, high = intensity_range
    span = high - low if high > low else 1.0
    return ((patches - low) / span).astype(np.float32)


def train_rvae(
    patches: np.ndarray,
    latent_dim: int = 2,
    epochs: int = 40,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    hidden: int = 64,
    translation: bool = False,
    noise_std: float = 0.1,
    angle_prior: float = math.pi / 2,
    translation_prior: float = 0.1,
    seed: int = 0,
    num_threads: int | None = 1,
) -> FeatureSpace:
    """Train an rVAE on every patch and return their latent positions.

    Parameters
    ----------
    patches : numpy.ndarray
        (M, N, N) patches, for example
        ``extract_patches(image, N, pixel_size_nm).values`` (a
        :class:`~hae_bluesky.data.patches.Patches` object is accepted too).
    latent_dim : int
        Number of latent dimensions of ``z`` (default 2, so the feature space
        can be drawn).
    epochs : int
        Passes over all patches (default 40).
    batch_size : int
        Patches per gradient step (default 128).
    learning_rate : float
        Adam learning rate (default 3e-3).
    hidden : int
        Hidden-layer width (default 64).
    translation : bool
        Also infer a translation of each patch (default False).
    noise_std : float
        s, assumed pixel noise of the patches scaled to [0, 1] (default 0.1).
    angle_prior : float
        s_phi, standard deviation of the Gaussian prior of the angle, radians
        (default pi / 2).
    translation_prior : float
        s_t, standard deviation of the prior of the translation, patch
        half-widths (default 0.1).
    seed : int
        Seed of weight initialisation, shuffling and sampling; the caller's
        global torch random state is left untouched.
    num_threads : int or None
        Torch intra-op threads while training (default 1; the network is so
        small that more threads mostly wait on each other, and on a busy
        machine they slow training down many times). None keeps torch's
        setting. The previous setting is restored afterwards.

    Returns
    -------
    FeatureSpace

    Raises
    ------
    ValueError
        If ``patches`` is not a non-empty (M, N, N) stack of finite square
        patches, or a training parameter is not positive.

    Notes
    -----
    The defaults train on the 1,656 patches of 5 x 5 pixels of a 50 x 40
    image in a few seconds on two CPU cores.
    """
    values = np.asarray(getattr(patches, "values", patches), dtype=np.float32)
    if values.ndim != 3 or values.shape[1] != values.shape[2] or values.shape[0] == 0:
        raise ValueError(f"patches must be a non-empty (M, N, N) array, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("patches contain non-finite values; clean the HAADF image first")
    if min(epochs, batch_size, learning_rate, noise_std, angle_prior,
           translation_prior) <= 0:
        raise ValueError(
            "epochs, batch size, learning rate, noise and prior widths must be positive"
        )
    intensity_range = (float(values.min()), float(values.max()))
    scaled = torch.from_numpy(_scale(values, intensity_range))

    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _train(scaled, intensity_range, latent_dim, epochs, batch_size, learning_rate,
                      hidden, translation, noise_std, angle_prior, translation_prior, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    scaled: torch.Tensor,
    intensity_range: tuple[float, float],
    latent_dim: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    hidden: int,
    translation: bool,
    noise_std: float,
    angle_prior: float,
    translation_prior: float,
    seed: int,
) -> FeatureSpace:
    count, patch_size = scaled.shape[0], scaled.shape[1]
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RotationInvariantVAE(patch_size, latent_dim, hidden, translation)
        prior_std = torch.ones(model.transform_dim + latent_dim)
        prior_std[0] = angle_prior
        prior_std[1:model.transform_dim] = translation_prior
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        history = np.empty(epochs)

        model.train()
        for epoch in range(epochs):
            order = torch.randperm(count)
            total = 0.0
            for start in range(0, count, batch_size):
                batch = scaled[order[start:start + batch_size]]
                mean, log_variance = model.encode(batch)
                sample = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
                angle, shift, z = model.split(sample)
                rendered = model.decode(z, angle, shift)
                reconstruction = ((batch - rendered) ** 2).sum(dim=(1, 2)) / (2 * noise_std**2)
                loss = (reconstruction + _gaussian_kl(mean, log_variance, prior_std)).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * batch.shape[0]
            history[epoch] = total / count
            logger.debug("rVAE epoch %d: loss %.4g per patch", epoch, history[epoch])

    model.eval()
    with torch.no_grad():
        mean, _ = model.encode(scaled)
        angle, shift, z = model.split(mean)
    seconds = time.perf_counter() - started
    logger.info("rVAE trained on %d patches of %d x %d in %.1f s (final loss %.4g)",
                count, patch_size, patch_size, seconds, history[-1])
    return FeatureSpace(
        latents=z.numpy().astype(float),
        angles=angle.numpy().astype(float),
        translations=None if shift is None else shift.numpy().astype(float),
        loss_history=history,
        training_seconds=seconds,
        model=model,
        intensity_range=intensity_range,
    )


def trajectory_latents(latents: np.ndarray, patch_indices: np.ndarray) -> np.ndarray:
    """Latent positions of the patches visited by a trajectory, in order.

    Parameters
    ----------
    latents : numpy.ndarray
        (M, d) latent position of every patch.
    patch_indices : array-like of int
        (T,) patch index visited at each step.

    Returns
    -------
    numpy.ndarray
        (T, d) latent positions.

    Raises
    ------
    ValueError
        If a patch index is outside 0 .. M - 1.
    """
    latents = np.asarray(latents, dtype=float)
    indices = np.asarray(patch_indices, dtype=int).ravel()
    if indices.size and (indices.min() < 0 or indices.max() >= latents.shape[0]):
        raise ValueError(
            f"patch indices must lie in 0-{latents.shape[0] - 1}, got "
            f"{int(indices.min())}-{int(indices.max())}"
        )
    return latents[indices]


@dataclass(frozen=True)
class LatentDensity:
    """Kernel density of visited latent positions on a regular grid.

    Attributes
    ----------
    x, y : numpy.ndarray
        (gx,) and (gy,) grid coordinates along latent dimensions 1 and 2.
    density : numpy.ndarray
        (gy, gx) density ``f`` at each grid point (integrates to about 1
        over the plane, in inverse latent units squared).
    kernel_covariance : numpy.ndarray
        (2, 2) kernel covariance ``H``.
    """

    x: np.ndarray
    y: np.ndarray
    density: np.ndarray
    kernel_covariance: np.ndarray


@dataclass(frozen=True)
class AggregationPoint:
    """A local maximum of the density of visited latent positions.

    Attributes
    ----------
    location : tuple of float
        Latent coordinates of the maximum (a grid point).
    density : float
        Density ``f`` there.
    relative_density : float
        ``density`` divided by the highest density on the grid.
    visits : int
        Visited positions in its basin of attraction.
    visit_steps : tuple of int
        Positions in the trajectory (0-based order) of those visits.
    """

    location: tuple[float, float]
    density: float
    relative_density: float
    visits: int
    visit_steps: tuple[int, ...]


def latent_density(
    visited: np.ndarray,
    grid_size: int = 128,
    extent: tuple[float, float, float, float] | None = None,
    bandwidth: str | float = "scott",
    min_bandwidth: float = 0.05,
) -> LatentDensity:
    """Gaussian kernel density of 2-D visited latent positions on a grid.

    Parameters
    ----------
    visited : numpy.ndarray
        (T, 2) visited latent positions.
    grid_size : int
        Grid points along each axis (default 128).
    extent : tuple of float, optional
        (x_min, x_max, y_min, y_max) of the grid; by default the visited
        positions padded by three kernel standard deviations.
    bandwidth : str or float
        ``bw_method`` of :class:`scipy.stats.gaussian_kde` (default Scott).
    min_bandwidth : float
        Kernel standard deviation, latent units, used along both axes when
        the visited positions are too few or lie on a line or a point (the
        kernel density of scipy is undefined there).

    Returns
    -------
    LatentDensity

    Raises
    ------
    ValueError
        If ``visited`` is not (T, 2) with T >= 1 finite rows.
    """
    visited = np.asarray(visited, dtype=float)
    if visited.ndim != 2 or visited.shape[1] != 2 or visited.shape[0] == 0:
        raise ValueError(
            f"visited latent positions must be (T, 2) with T >= 1, got {visited.shape}; "
            "pass two latent dimensions"
        )
    if not np.all(np.isfinite(visited)):
        raise ValueError("visited latent positions must be finite")

    kernel = None
    if visited.shape[0] > 2:
        try:
            kernel = stats.gaussian_kde(visited.T, bw_method=bandwidth)
            covariance = np.atleast_2d(kernel.covariance)
        except np.linalg.LinAlgError:
            kernel = None
    if kernel is None:
        logger.info("visited latent positions are degenerate; kernel std %.3g", min_bandwidth)
        covariance = np.eye(2) * min_bandwidth**2

    if extent is None:
        pad = 3.0 * np.sqrt(np.diag(covariance))
        low, high = visited.min(axis=0) - pad, visited.max(axis=0) + pad
        extent = (low[0], high[0], low[1], high[1])
    x = np.linspace(extent[0], extent[1], grid_size)
    y = np.linspace(extent[2], extent[3], grid_size)
    grid_x, grid_y = np.meshgrid(x, y)
    points = np.vstack([grid_x.ravel(), grid_y.ravel()])
    if kernel is not None:
        density = kernel(points)
    else:
        density = np.mean([stats.multivariate_normal(centre, covariance).pdf(points.T)
                           for centre in visited], axis=0)
    return LatentDensity(x=x, y=y, density=density.reshape(grid_size, grid_size),
                         kernel_covariance=covariance)


def _nearest_grid_index(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
    step = (axis[-1] - axis[0]) / (axis.size - 1) if axis.size > 1 else 1.0
    index = np.rint((values - axis[0]) / (step if step > 0 else 1.0))
    return np.clip(index, 0, axis.size - 1).astype(int)


def _ascent_targets(density: np.ndarray) -> np.ndarray:
    rows, columns = density.shape
    padded = np.pad(density, 1, constant_values=-np.inf)
    offsets = [(0, 0)] + [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                          if (dr, dc) != (0, 0)]
    neighbours = np.stack([padded[1 + dr:1 + dr + rows, 1 + dc:1 + dc + columns]
                           for dr, dc in offsets])
    best = np.argmax(neighbours, axis=0)
    row_index, column_index = np.indices(density.shape)
    offset_array = np.asarray(offsets)
    target_rows = row_index + offset_array[best, 0]
    target_columns = column_index + offset_array[best, 1]
    target = (target_rows * columns + target_columns).ravel()
    while True:
        jumped = target[target]
        if np.array_equal(jumped, target):
            return target
        target = jumped


def _fold_shallow_peaks(density: np.ndarray, target: np.ndarray,
                        min_drop: float) -> np.ndarray:
    """Map each grid cell's ascent target to the prominent maximum it belongs to."""
    flat = density.ravel()
    labels = target.reshape(density.shape)
    pairs = [
        (labels[:, :-1], labels[:, 1:], density[:, :-1], density[:, 1:]),
        (labels[:-1, :], labels[1:, :], density[:-1, :], density[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:], density[:-1, :-1], density[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1], density[:-1, 1:], density[1:, :-1]),
    ]
    first, second, saddle = [], [], []
    for left, right, left_density, right_density in pairs:
        border = left != right
        first.append(left[border])
        second.append(right[border])
        saddle.append(np.minimum(left_density, right_density)[border])
    first, second, saddle = (np.concatenate(part) for part in (first, second, saddle))

    parent = {int(peak): int(peak) for peak in np.unique(target)}

    def root(peak: int) -> int:
        while parent[peak] != peak:
            parent[peak] = parent[parent[peak]]
            peak = parent[peak]
        return peak

    # Highest saddles first: two basins meet where the density between
    # them is highest, and the lower maximum's prominence is its height
    # above that saddle.
    for edge in np.argsort(-saddle, kind="stable"):
        a, b = root(int(first[edge])), root(int(second[edge]))
        if a == b:
            continue
        lower, higher = (a, b) if flat[a] < flat[b] else (b, a)
        if flat[lower] - saddle[edge] < min_drop:
            parent[lower] = higher
    return np.array([root(int(peak)) for peak in target])


def aggregation_points(
    visited: np.ndarray,
    min_relative_density: float = 0.1,
    min_prominence: float = 0.05,
    grid_size: int = 128,
    extent: tuple[float, float, float, float] | None = None,
    bandwidth: str | float = "scott",
    density: LatentDensity | None = None,
) -> list[AggregationPoint]:
    """Find the aggregation points of a trajectory in a 2-D latent space.

    Parameters
    ----------
    visited : numpy.ndarray
        (T, 2) visited latent positions, in trajectory order.
    min_relative_density : float
        Local maxima below this fraction of the highest density are ignored
        (default 0.1).
    min_prominence : float
        Local maxima whose prominence (see the module docstring) is below
        this fraction of the highest density are folded into the higher
        maximum next to them (default 0.05).
    grid_size, extent, bandwidth
        Passed to :func:`latent_density`.
    density : LatentDensity, optional
        A density already computed from ``visited``; skips the KDE.

    Returns
    -------
    list of AggregationPoint
        Sorted by density, highest first.

    Raises
    ------
    ValueError
        If ``min_relative_density`` or ``min_prominence`` is not in [0, 1],
        or ``visited`` is not (T, 2).
    """
    if not 0 <= min_relative_density <= 1:
        raise ValueError(
            f"min_relative_density must be in [0, 1], got {min_relative_density}"
        )
    if not 0 <= min_prominence <= 1:
        raise ValueError(f"min_prominence must be in [0, 1], got {min_prominence}")
    visited = np.asarray(visited, dtype=float)
    if density is None:
        density = latent_density(visited, grid_size, extent, bandwidth)
    values = density.density
    highest = float(values.max())

    target = _fold_shallow_peaks(values, _ascent_targets(values), min_prominence * highest)
    is_peak = target == np.arange(values.size)
    is_peak &= values.ravel() >= min_relative_density * highest
    is_peak &= values.ravel() > 0

    gx, gy = density.x, density.y
    column_of = _nearest_grid_index(gx, visited[:, 0])
    row_of = _nearest_grid_index(gy, visited[:, 1])
    basin = target[row_of * gx.size + column_of]

    found = []
    for cell in np.flatnonzero(is_peak):
        row, column = divmod(int(cell), gx.size)
        steps = tuple(int(i) for i in np.flatnonzero(basin == cell))
        found.append(AggregationPoint(
            location=(float(gx[column]), float(gy[row])),
            density=float(values[row, column]),
            relative_density=float(values[row, column] / highest),
            visits=len(steps),
            visit_steps=steps,
        ))
    found.sort(key=lambda point: point.density, reverse=True)
    return found
