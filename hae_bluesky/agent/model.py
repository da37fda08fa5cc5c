"""The deep kernel learning (DKL) model: patches to a scalarizer value.

A small multilayer perceptron ``g_w`` maps each flattened HAADF patch ``s``
(N * N pixels, standardised per pixel over all patches) to a low-dimensional
embedding ``z = g_w(s)``. The embedding is scaled into ``[-0.95, 0.95]``
(gpytorch ``ScaleToBounds`` with the bounds of the training embeddings) and
feeds an exact Gaussian process (GP) with a Matern-5/2 (or RBF) kernel and an
output scale::

    k(s, s') = outputscale * k_base(z(s), z(s') / lengthscale)

The network weights and the GP hyperparameters are learned together by
maximising the exact marginal log likelihood with Adam. Targets are
standardised, ``y' = (y - mean(y)) / max(std(y), floor)``, so the
likelihood's noise floor and the kernel priors work for any scalarizer unit.

Each step warm-starts from the previous weights and stops early once the
loss stops improving. Failures (a Cholesky decomposition that is not
positive definite, a loss that is not finite) fall back, in order, to more
diagonal jitter, double precision, and a re-initialised network; the
fallback used is recorded in :class:`FitResult` and logged. When every
attempt fails the model predicts the prior (the mean and spread of the
measured values everywhere), so a caller always gets an answer.

Prediction is the analytic posterior of the latent function ``f`` (without
observation noise), in batches of candidates::

    mean(s) = m + k_s^T (K + sigma_n^2 I)^-1 (y' - m)
    var(s)  = outputscale - || L^-1 k_s ||^2,   L L^T = K + sigma_n^2 I

computed in double precision from the float32 embeddings.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch
from linear_operator.utils.errors import NanError, NotPSDError
from linear_operator.utils.warnings import NumericalWarning

logger = logging.getLogger(__name__)

__all__ = ["DeepKernelModel", "FitResult", "ModelSettings", "Posterior"]

KERNELS = ("matern52", "rbf")

#: Candidates (at most) whose embeddings set the bounds of the GP input.
REFERENCE_SIZE = 4096


@dataclass(frozen=True)
class ModelSettings:
    """Tuning of the DKL model; every field has a working default.

    Attributes
    ----------
    hidden : tuple of int
        Widths of the hidden layers of the feature extractor.
    kernel : {"matern52", "rbf"}
        Base kernel on the embedding.
    mean : {"linear", "constant"}
        Prior mean of the GP on the embedding. A linear mean carries a
        monotone trend (brighter patch, stronger edge) beyond the measured
        range, where a constant mean reverts to the average.
    learning_rate : float
        Adam step size.
    initial_iterations : int
        Most Adam iterations of a fit from freshly initialised weights.
    warm_iterations : int
        Most Adam iterations of a warm-started fit.
    patience : int
        Stop after this many iterations without a loss improvement larger
        than ``tolerance``.
    tolerance : float
        Smallest loss decrease (nats per training point) that counts as an
        improvement.
    noise_floor : float
        Lower bound of the likelihood noise variance, in units of the
        standardised target variance: at least this fraction of the
        variance of the measured values is taken as measurement noise.
        Single-pixel EELS scalarizers are noisy (on the Cu/ZnO recording,
        differences between neighbouring pixels put the noise at up to 26%
        of the Cu L2,3 map variance and 69% of the Zn L2,3 map variance);
        without a floor the network bends the embedding until the GP
        interpolates that noise, and the model turns overconfident.
    spread_floor : float
        Lower bound on the standard deviation used to standardise targets,
        relative to ``max(|mean|, 1)`` of the measured values (scalarizer
        units); it keeps constant targets finite.
    jitter : float
        Diagonal jitter (standardised units) added before the Cholesky
        decomposition in prediction; multiplied by 100 at each retry.
    batch_size : int
        Candidates per batch in prediction (bounds memory at large M).
    random_features : int
        Random Fourier features of a Thompson sample of the prior.
    """

    hidden: tuple[int, ...] = (32, 16)
    kernel: str = "matern52"
    mean: str = "linear"
    learning_rate: float = 0.02
    initial_iterations: int = 150
    warm_iterations: int = 12
    patience: int = 8
    tolerance: float = 1e-3
    noise_floor: float = 0.1
    spread_floor: float = 1e-6
    jitter: float = 1e-6
    batch_size: int = 16384
    random_features: int = 512

    def __post_init__(self) -> None:
        if self.mean not in ("linear", "constant"):
            raise ValueError(f"unknown GP mean {self.mean!r}; use 'linear' or 'constant'")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use one of {KERNELS}")
        if not self.hidden or any(int(width) < 1 for width in self.hidden):
            raise ValueError(f"hidden layer widths must be positive integers, got {self.hidden}")
        positive = {
            "learning_rate": self.learning_rate, "noise_floor": self.noise_floor,
            "spread_floor": self.spread_floor, "jitter": self.jitter,
            "batch_size": self.batch_size, "random_features": self.random_features,
        }
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"model setting {name} must be positive, got {value!r}")
        for name in ("initial_iterations", "warm_iterations", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model setting {name} must be at least 1")


@dataclass
class FitResult:
    """What one fit did.

    Attributes
    ----------
    loss : float
        Final negative marginal log likelihood per training point (nats), or
        NaN when every attempt failed.
    iterations : int
        Adam iterations of the successful attempt.
    seconds : float
        Wall time of the whole fit, fallbacks included (s).
    fallback : str or None
        ``None`` when the first attempt succeeded; else ``"jitter"``,
        ``"float64"``, ``"reinitialise"`` or ``"prior"`` (every attempt
        failed; the model predicts the prior).
    warm : bool
        Whether the fit started from the previous weights.
    """

    loss: float
    iterations: int
    seconds: float
    fallback: str | None
    warm: bool


@dataclass
class Posterior:
    """Posterior of the latent function at every candidate (scalarizer units).

    Attributes
    ----------
    mean, std : numpy.ndarray
        (M,) float64 predictive mean and standard deviation of ``f``.
    samples : numpy.ndarray or None
        (S, M) float64 joint posterior samples of ``f`` (Thompson sampling),
        or ``None`` when none were asked for.
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None = None


class _Bounded(gpytorch.utils.grid.ScaleToBounds):
    """Scale embeddings into ``[-0.95, 0.95]`` with bounds set by :meth:`update`.

    gpytorch's ``ScaleToBounds`` takes the bounds from the training
    embeddings only and divides by their spread; here the bounds also cover
    a reference sample of all candidates (so candidates beyond the measured
    range are not clamped onto it) and the spread is floored at ``1e-6``
    (a single seed point, identical patches).
    """

    def update(self, embedding: torch.Tensor) -> None:
        self.min_val.data = embedding.detach().min().to(self.min_val.dtype)
        self.max_val.data = embedding.detach().max().to(self.max_val.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(self.min_val, self.max_val)
        spread = torch.clamp(self.max_val - self.min_val, min=1e-6)
        span = 0.95 * (self.upper_bound - self.lower_bound)
        return (x - self.min_val) * (span / spread) + 0.95 * self.lower_bound


class _Embedding(torch.nn.Module):
    """Linear projection on the leading principal axes plus a small MLP.

    ``g(s) = P s + MLP(s)``: ``P`` starts as the projection on the first
    principal components of all patches (whitened), and the MLP's last layer
    starts small, so with few measurements the GP sees a smooth,
    low-dimensional summary of the patches (brightness, gradients) and the
    network bends it only as far as the data ask.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], embedding_dim: int,
                 basis: torch.Tensor | None) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [torch.nn.Linear(width, int(size)), torch.nn.SiLU()]
            width = int(size)
        layers.append(torch.nn.Linear(width, embedding_dim))
        self.mlp = torch.nn.Sequential(*layers)
        self.linear = torch.nn.Linear(n_features, embedding_dim, bias=False)
        with torch.no_grad():
            if basis is not None:
                self.linear.weight.copy_(basis.T.to(self.linear.weight.dtype))
            self.mlp[-1].weight.mul_(0.1)
            self.mlp[-1].bias.zero_()
        self.out_features = embedding_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features) + self.mlp(features)


class _DeepKernelGP(gpytorch.models.ExactGP):
    """Exact GP on the bounded embedding of a multilayer perceptron."""

    def __init__(self, n_features: int, embedding_dim: int, settings: ModelSettings,
                 likelihood: gpytorch.likelihoods.GaussianLikelihood,
                 basis: torch.Tensor | None = None) -> None:
        super().__init__(None, None, likelihood)
        self.feature_extractor = _Embedding(n_features, settings.hidden, embedding_dim, basis)
        self.bounds = _Bounded(-1.0, 1.0)
        self.reference: torch.Tensor | None = None
        if settings.mean == "linear":
            self.mean_module = gpytorch.means.LinearMean(embedding_dim)
        else:
            self.mean_module = gpytorch.means.ConstantMean()
        if settings.kernel == "rbf":
            base = gpytorch.kernels.RBFKernel()
        else:
            base = gpytorch.kernels.MaternKernel(nu=2.5)
        base.lengthscale = 0.5
        self.covar_module = gpytorch.kernels.ScaleKernel(base)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        raw = self.feature_extractor(features)
        if self.training:
            reference = raw.detach()
            if self.reference is not None:
                with torch.no_grad():
                    reference = torch.cat([reference, self.feature_extractor(self.reference)])
            self.bounds.update(reference)
        return self.bounds(raw)

    def forward(self, features: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        embedding = self.embed(features)
        return gpytorch.distributions.MultivariateNormal(
            self.mean_module(embedding), self.covar_module(embedding)
        )


def _new_model(n_features: int, embedding_dim: int, settings: ModelSettings,
               seed: int, basis: torch.Tensor | None = None) -> _DeepKernelGP:
    """Build a freshly initialised model without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(settings.noise_floor)
        )
        likelihood.noise = max(0.1, 2 * settings.noise_floor)
        return _DeepKernelGP(n_features, embedding_dim, settings, likelihood, basis)


class DeepKernelModel:
    """A DKL model over a fixed set of candidate patches.

    Parameters
    ----------
    patches : numpy.ndarray
        (M, F) flattened patches, one row per candidate (F = N * N).
    embedding_dim : int
        Dimension of the embedding that feeds the GP.
    settings : ModelSettings
        Tuning.
    seed : int
        Seed of the network initialisation and of Thompson samples.

    Notes
    -----
    The model is not thread-safe; the agent serialises access to it.
    """

    def __init__(self, patches: np.ndarray, embedding_dim: int = 2,
                 settings: ModelSettings | None = None, seed: int = 0) -> None:
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 2 or patches.shape[0] < 1:
            raise ValueError(f"patches must be a non-empty (M, F) array, got {patches.shape}")
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding dimension must be at least 1, got {embedding_dim}")
        self.settings = settings or ModelSettings()
        self.embedding_dim = int(embedding_dim)
        self.seed = int(seed)

        centre = patches.mean(axis=0)
        spread = np.maximum(patches.std(axis=0), 1e-6)
        self._features = torch.from_numpy((patches - centre) / spread)
        rng = np.random.default_rng(self.seed)
        self._basis = _principal_axes(self._features.numpy(), self.embedding_dim, rng)
        sample = rng.choice(self.n_candidates, min(self.n_candidates, REFERENCE_SIZE),
                            replace=False)
        self._reference = self._features[torch.from_numpy(np.sort(sample))]
        self.dtype = torch.float32
        self._initialisations = 0
        self._model = self._fresh_model(self.seed)
        self._train_index: np.ndarray | None = None
        self._target_mean = 0.0
        self._target_scale = 1.0
        self._prior_only = False
        self._cache: dict | None = None
        self.fitted = False

    @property
    def n_candidates(self) -> int:
        """M, the number of candidate patches."""
        return int(self._features.shape[0])

    @property
    def n_features(self) -> int:
        """F, the length of one flattened patch."""
        return int(self._features.shape[1])

    @property
    def target_mean(self) -> float:
        """Mean of the measured values used to standardise (scalarizer units)."""
        return self._target_mean

    @property
    def target_scale(self) -> float:
        """Spread used to standardise, ``max(std, floor)`` (scalarizer units)."""
        return self._target_scale

    def standardise(self, values: np.ndarray | float) -> np.ndarray | float:
        """Map scalarizer values to the model's units: ``(y - mean) / scale``."""
        return (values - self._target_mean) / self._target_scale

    # ------------------------------------------------------------------ fitting

    def _standardised_targets(self, targets: np.ndarray) -> np.ndarray:
        mean = float(np.mean(targets))
        spread = float(np.std(targets))
        floor = self.settings.spread_floor * max(abs(mean), 1.0)
        self._target_mean = mean
        self._target_scale = max(spread, floor)
        return (targets - mean) / self._target_scale

    def fit(self, train_index: np.ndarray, targets: np.ndarray,
            warm: bool = True) -> FitResult:
        """Fit the model to measured values at candidate patches.

        Parameters
        ----------
        train_index : numpy.ndarray
            (K,) candidate index of each measurement; repeats are allowed.
        targets : numpy.ndarray
            (K,) finite measured scalarizer values (scalarizer units).
        warm : bool
            Start from the current weights (``True``) or from a freshly
            initialised network (``False``).

        Returns
        -------
        FitResult

        Raises
        ------
        ValueError
            For empty, mismatched, out-of-range or non-finite input (a
            caller error, not numerical trouble).
        """
        train_index = np.asarray(train_index, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.float64)
        if train_index.ndim != 1 or train_index.shape != targets.shape or train_index.size < 1:
            raise ValueError(
                f"need matching non-empty (K,) indices and targets, got shapes "
                f"{train_index.shape} and {targets.shape}"
            )
        if train_index.min() < 0 or train_index.max() >= self.n_candidates:
            raise ValueError(f"training indices must lie in 0..{self.n_candidates - 1}")
        if not np.all(np.isfinite(targets)):
            raise ValueError("training targets must be finite; drop bad measurements first")

        start = time.perf_counter()
        self._cache = None
        self._train_index = train_index
        standardised = self._standardised_targets(targets)
        warm = bool(warm and self.fitted and not self._prior_only)
        if not warm:
            self._reinitialise()
        saved = copy.deepcopy(self._model.state_dict())

        attempts = [(None, self.settings.jitter), ("jitter", 1e-3)]
        if self.dtype == torch.float32:
            attempts.append(("float64", 1e-6))
        attempts.append(("reinitialise", 1e-4))
        for fallback, jitter in attempts:
            if fallback == "float64":
                self._to_dtype(torch.float64)
            if fallback == "reinitialise":
                self._reinitialise(dtype=torch.float64)
                warm = False
            try:
                loss, iterations = self._train(standardised, warm, jitter)
            except (NotPSDError, NanError, RuntimeError, ValueError) as error:
                logger.info("DKL fit %s failed (%s); trying the next fallback",
                            fallback or "attempt", _short(error))
                self._model.load_state_dict(saved)
                continue
            self._prior_only = False
            self.fitted = True
            if fallback is not None:
                logger.info("DKL fit needed the %r fallback", fallback)
            return FitResult(loss, iterations, time.perf_counter() - start, fallback, warm)

        logger.warning("every DKL fit attempt failed; the live model predicts the prior "
                       "(mean and spread of the measured values) this step")
        self._prior_only = True
        self.fitted = True
        return FitResult(float("nan"), 0, time.perf_counter() - start, "prior", warm)

    def _reinitialise(self, dtype: torch.dtype | None = None) -> None:
        self._initialisations += 1
        seed = self.seed + 7919 * (self._initialisations - 1)
        self._model = self._fresh_model(seed)
        self._to_dtype(dtype or self.dtype)

    def _fresh_model(self, seed: int) -> _DeepKernelGP:
        model = _new_model(self.n_features, self.embedding_dim, self.settings, seed, self._basis)
        model.reference = self._reference
        return model

    def _to_dtype(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._model = self._model.to(dtype)
        self._model.reference = self._reference.to(dtype)

    def _train(self, standardised: np.ndarray, warm: bool, jitter: float) -> tuple[float, int]:
        model = self._model
        inputs = self._features[torch.from_numpy(self._train_index)].to(self.dtype)
        targets = torch.from_numpy(standardised).to(self.dtype)
        model.set_train_data(inputs, targets, strict=False)
        model.train()
        model.likelihood.train()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.settings.learning_rate)
        limit = self.settings.warm_iterations if warm else self.settings.initial_iterations

        best, stale, loss_value, iterations = math.inf, 0, math.nan, 0
        with _exact_settings(jitter):
            while iterations < limit:
                iterations += 1
                optimiser.zero_grad()
                loss = -mll(model(inputs), targets)
                if not torch.isfinite(loss):
                    raise ValueError(f"marginal log likelihood is {loss.item()}")
                loss.backward()
                optimiser.step()
                loss_value = float(loss.item())
                if loss_value < best - self.settings.tolerance:
                    best, stale = loss_value, 0
                else:
                    stale += 1
                    if stale >= self.settings.patience:
                        break
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise ValueError("model parameters became non-finite")

            # One forward pass in training mode fixes the embedding bounds to
            # the training embeddings of the final weights.
            with torch.no_grad():
                model.embed(inputs)
        logger.debug("DKL fit: %d iterations, loss %.4f", iterations, loss_value)
        return loss_value, iterations

    # --------------------------------------------------------------- prediction

    def embeddings(self) -> np.ndarray:
        """Return the bounded embedding of every candidate, (M, embedding_dim)."""
        self._model.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, self.n_candidates, self.settings.batch_size):
                chunk = self._features[start:start + self.settings.batch_size]
                chunks.append(self._model.embed(chunk.to(self.dtype)).double().numpy())
        return np.concatenate(chunks)

    def predict(self, n_samples: int = 0,
                generator: np.random.Generator | None = None) -> Posterior:
        """Return the posterior of ``f`` at every candidate (scalarizer units).

        Parameters
        ----------
        n_samples : int
            Joint posterior samples to draw (for Thompson sampling), by
            pathwise conditioning of a random-Fourier-feature prior sample:
            ``f*(s) = f0(s) + k_s^T (K + sigma_n^2 I)^-1 (y' - f0(X) - eps)``.
        generator : numpy.random.Generator, optional
            Random source of the samples (default: seeded by the model seed).

        Returns
        -------
        Posterior
        """
        if not self.fitted or self._prior_only or self._train_index is None:
            return self._prior_posterior(n_samples, generator)
        try:
            return self._posterior(n_samples, generator or np.random.default_rng(self.seed))
        except (NotPSDError, RuntimeError, ValueError) as error:
            logger.warning("DKL prediction failed (%s); predicting the prior", _short(error))
            return self._prior_posterior(n_samples, generator)

    def _prior_posterior(self, n_samples: int,
                         generator: np.random.Generator | None) -> Posterior:
        mean = np.full(self.n_candidates, self._target_mean)
        std = np.full(self.n_candidates, self._target_scale)
        samples = None
        if n_samples:
            rng = generator or np.random.default_rng(self.seed)
            draws = rng.standard_normal((n_samples, self.n_candidates))
            samples = mean + std * draws
        return Posterior(mean, std, samples)

    def _hyperparameters(self) -> tuple[float, float]:
        model = self._model
        outputscale = float(model.covar_module.outputscale.item())
        noise = float(model.likelihood.noise.item())
        return outputscale, noise

    def _posterior(self, n_samples: int, rng: np.random.Generator) -> Posterior:
        model = self._model
        model.eval()
        outputscale, noise = self._hyperparameters()
        inputs = self._features[torch.from_numpy(self._train_index)].to(self.dtype)
        targets = torch.as_tensor(model.train_targets, dtype=torch.float64)
        batch = self.settings.batch_size

        with torch.no_grad():
            train_embedding = model.embed(inputs)
            embedding = torch.cat([
                model.embed(self._features[start:start + batch].to(self.dtype))
                for start in range(0, self.n_candidates, batch)
            ])
            factor = self._factor(train_embedding, noise)
            residual = (targets - model.mean_module(train_embedding).double())[:, None]
            if n_samples:
                features = _RandomFeatures(model, rng, self.settings.random_features,
                                           n_samples)
                noise_draw = torch.from_numpy(rng.standard_normal((len(targets), n_samples)))
                pathwise = residual - features(train_embedding) - math.sqrt(noise) * noise_draw
                residual = torch.cat([residual, pathwise], dim=1)
            weights = torch.cholesky_solve(residual, factor)

            means, variances, samples = [], [], []
            for start in range(0, self.n_candidates, batch):
                chunk = embedding[start:start + batch]
                cross = model.covar_module(chunk, train_embedding).to_dense().double()
                update = cross @ weights
                prior = model.mean_module(chunk).double()
                means.append(prior + update[:, 0])
                variances.append(outputscale - _squared_norms(factor, cross))
                if n_samples:
                    samples.append((prior[:, None] + features(chunk) + update[:, 1:]).T)

        self._cache = {"embedding": embedding, "train_embedding": train_embedding,
                       "noise": noise, "outputscale": outputscale}
        posterior = Posterior(self._to_units(torch.cat(means)),
                              self._to_std(torch.cat(variances), outputscale))
        if n_samples:
            posterior.samples = self._to_units(torch.cat(samples, 1))
        if not (np.all(np.isfinite(posterior.mean)) and np.all(np.isfinite(posterior.std))):
            self._cache = None
            raise ValueError("posterior mean or standard deviation is not finite")
        return posterior

    def fantasy_std(self, chosen: list[int]) -> np.ndarray:
        """Predictive std after pretending the chosen candidates were measured.

        The "kriging believer" update for a batch of suggestions: each chosen
        candidate is added to the training set with its own posterior mean as
        the value (which leaves the posterior mean unchanged) and the
        observation noise, so the uncertainty around it shrinks::

            var'(s) = outputscale - || L'^-1 k'_s ||^2

        with ``L'`` and ``k'_s`` built on the training plus chosen embeddings.

        Parameters
        ----------
        chosen : list of int
            Candidate indices already picked in this batch.

        Returns
        -------
        numpy.ndarray
            (M,) standard deviation in scalarizer units. Without a fitted
            posterior (prior only), the prior spread everywhere.
        """
        cache = self._cache
        if cache is None or self._prior_only:
            return np.full(self.n_candidates, self._target_scale)
        model = self._model
        support = torch.cat([cache["train_embedding"], cache["embedding"][list(chosen)]])
        batch = self.settings.batch_size
        with torch.no_grad():
            try:
                factor = self._factor(support, cache["noise"])
            except NotPSDError as error:
                logger.warning("batch fantasy update failed (%s); keeping the posterior std",
                               _short(error))
                return self._to_std(None, cache["outputscale"])
            variances = []
            for start in range(0, self.n_candidates, batch):
                cross = model.covar_module(cache["embedding"][start:start + batch],
                                           support).to_dense().double()
                variances.append(cache["outputscale"] - _squared_norms(factor, cross))
        return self._to_std(torch.cat(variances), cache["outputscale"])

    def _factor(self, support: torch.Tensor, noise: float) -> torch.Tensor:
        covariance = self._model.covar_module(support).to_dense().double()
        identity = torch.eye(covariance.shape[0], dtype=torch.float64)
        return _cholesky(covariance + noise * identity, self.settings.jitter)

    def _to_units(self, standardised: torch.Tensor) -> np.ndarray:
        return self._target_mean + self._target_scale * standardised.numpy()

    def _to_std(self, variance: torch.Tensor | None, outputscale: float) -> np.ndarray:
        if variance is None:
            variance = torch.full((self.n_candidates,), outputscale, dtype=torch.float64)
        variance = np.clip(variance.numpy(), 1e-12 * outputscale, None)
        return self._target_scale * np.sqrt(variance)

    # -------------------------------------------------------------------- state

    def state_dict(self) -> dict:
        """Return weights, training data and standardisation as numpy/python values."""
        targets = self._model.train_targets
        return {
            "weights": {key: value.detach().cpu().numpy().copy()
                        for key, value in self._model.state_dict().items()},
            "dtype": "float64" if self.dtype == torch.float64 else "float32",
            "initialisations": self._initialisations,
            "train_index": None if self._train_index is None else self._train_index.copy(),
            "train_targets": None if targets is None else targets.double().numpy().copy(),
            "target_mean": self._target_mean,
            "target_scale": self._target_scale,
            "prior_only": self._prior_only,
            "fitted": self.fitted,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            If the weights do not fit this model (another patch size,
            embedding dimension or network).
        """
        dtype = torch.float64 if state["dtype"] == "float64" else torch.float32
        self._initialisations = int(state["initialisations"])
        self._to_dtype(dtype)
        weights = {key: torch.as_tensor(np.asarray(value)).to(dtype)
                   for key, value in state["weights"].items()}
        try:
            self._model.load_state_dict(weights)
        except RuntimeError as error:
            raise ValueError(f"saved model weights do not fit this model: {error}") from None
        self._train_index = None
        if state["train_index"] is not None:
            self._train_index = np.asarray(state["train_index"], dtype=np.int64)
            inputs = self._features[torch.from_numpy(self._train_index)].to(dtype)
            targets = torch.as_tensor(np.asarray(state["train_targets"])).to(dtype)
            self._model.set_train_data(inputs, targets, strict=False)
        self._target_mean = float(state["target_mean"])
        self._target_scale = float(state["target_scale"])
        self._prior_only = bool(state["prior_only"])
        self.fitted = bool(state["fitted"])
        self._cache = None


class _RandomFeatures:
    """Random Fourier features of one prior sample per column: ``f0(z) = phi(z) w``.

    For a stationary kernel ``k(z, z') = outputscale * rho(z - z')``, the
    features ``phi(z) = sqrt(2 * outputscale / D) * cos(z Omega / lengthscale + b)``
    with frequencies ``Omega`` drawn from the kernel's spectral density
    (standard normal for RBF; multivariate Student t with ``2 nu = 5``
    degrees of freedom for Matern-5/2), phases ``b ~ U(0, 2 pi)`` and weights
    ``w ~ N(0, 1)`` give a function with covariance close to ``k``.
    """

    def __init__(self, model: _DeepKernelGP, rng: np.random.Generator, count: int,
                 n_samples: int) -> None:
        base = model.covar_module.base_kernel
        dimension = int(model.feature_extractor.out_features)
        frequencies = rng.standard_normal((dimension, count))
        if isinstance(base, gpytorch.kernels.MaternKernel):
            degrees = 2 * base.nu
            frequencies /= np.sqrt(rng.chisquare(degrees, size=count) / degrees)
        lengthscale = float(base.lengthscale.detach().reshape(-1)[0])
        outputscale = float(model.covar_module.outputscale.item())
        self._frequencies = torch.from_numpy(frequencies / lengthscale)
        self._phases = torch.from_numpy(rng.uniform(0, 2 * np.pi, size=count))
        self._weights = torch.from_numpy(rng.standard_normal((count, n_samples)))
        self._amplitude = math.sqrt(2 * outputscale / count)

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        projected = embedding.double() @ self._frequencies + self._phases
        return self._amplitude * torch.cos(projected) @ self._weights


class _exact_settings:
    """gpytorch settings for an exact fit: Cholesky always, with the given jitter.

    linear_operator warns each time it adds jitter; the fit has fallbacks of
    its own and logs the one it used, so those warnings are silenced here.
    """

    def __init__(self, jitter: float) -> None:
        self._settings = [
            warnings.catch_warnings(),
            gpytorch.settings.max_cholesky_size(1_000_000),
            gpytorch.settings.cholesky_jitter(float_value=jitter, double_value=jitter * 1e-2),
            gpytorch.settings.cholesky_max_tries(3),
        ]

    def __enter__(self) -> None:
        for setting in self._settings:
            setting.__enter__()
        warnings.simplefilter("ignore", NumericalWarning)

    def __exit__(self, *exc) -> None:
        for setting in reversed(self._settings):
            setting.__exit__(*exc)


def _principal_axes(features: np.ndarray, count: int, rng: np.random.Generator,
                    sample: int = 20000) -> torch.Tensor:
    """Whitened projection (F, count) on the leading principal axes of the features.

    Computed on at most ``sample`` rows; columns beyond the rank are zero.
    """
    if len(features) > sample:
        features = features[rng.choice(len(features), sample, replace=False)]
    centred = features - features.mean(axis=0)
    _, values, axes = np.linalg.svd(centred, full_matrices=False)
    basis = np.zeros((features.shape[1], count), dtype=np.float32)
    usable = min(count, int(np.sum(values > 1e-6 * max(values[0], 1e-12))))
    if usable:
        scale = np.sqrt(len(features)) / values[:usable]
        basis[:, :usable] = (axes[:usable].T * scale).astype(np.float32)
    return torch.from_numpy(basis)


def _cholesky(matrix: torch.Tensor, jitter: float, tries: int = 4) -> torch.Tensor:
    """Cholesky factor of a symmetric matrix, adding ``jitter * 100**k`` on failure."""
    identity = torch.eye(matrix.shape[0], dtype=matrix.dtype)
    added = 0.0
    for attempt in range(tries + 1):
        factor, info = torch.linalg.cholesky_ex(matrix + added * identity)
        if int(info) == 0 and torch.isfinite(factor).all():
            if added:
                logger.info("prediction Cholesky needed %.1e jitter", added)
            return factor
        added = jitter * 100.0**attempt
    raise NotPSDError(f"covariance not positive definite even with {added:.1e} jitter")


def _squared_norms(factor: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """Return ``|| L^-1 k_s ||^2`` for each row ``k_s`` of ``cross`` (B, n)."""
    projected = torch.linalg.solve_triangular(factor, cross.T, upper=False)
    return (projected**2).sum(dim=0)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]
