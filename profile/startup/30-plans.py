"""Plans to queue: the adaptive experiment and its baselines on this profile's devices.

Every argument is JSON-able, so the queueserver can take them from any
client; the devices are the profile's ``stem_scan``, ``haadf`` and ``eels``.
The adaptive plan attaches its agent to ``experiment_control``, the handle
the intervention functions (``40-interventions.py``) act through.
"""

import numbers

from hae_bluesky import plans as hae_plans
from hae_bluesky.experiment import resolve_scalarizer

experiment_control = hae_plans.ExperimentControl()


def _metadata(md: dict | None) -> dict:
    metadata = dict(md or {})
    image = spectrum_image  # noqa: F821 (from 20-devices.py)
    simulation = microscope.describe_simulation()  # noqa: F821
    metadata.setdefault("hae", {}).update(
        dataset=image.metadata.get("dataset", image.metadata.get("source")),
        synthetic=image.is_synthetic, noise=simulation["noise"],
        image_shape=list(image.haadf.shape), simulation=simulation)
    return metadata


def _check_adaptive(policy, patch_size, n_seeds: int, budget: int,
                    seed_points: list | None) -> None:
    """Refuse settings the experiment would refuse, before it opens a run."""
    from hae_bluesky.agent.policy import policy_from_spec

    if policy is not None:
        policy_from_spec(policy)
    ny, nx = spectrum_image.haadf.shape  # noqa: F821
    whole = isinstance(patch_size, numbers.Real) and not isinstance(patch_size, bool) and (
        float(patch_size).is_integer())
    if not (whole and 1 <= patch_size <= min(ny, nx)):
        raise ValueError(f"patch_size must be a whole number of pixels from 1 to "
                         f"{min(ny, nx)} for the {ny} x {nx} HAADF image, got {patch_size!r}")
    patch_size = int(patch_size)
    candidates = (ny - patch_size + 1) * (nx - patch_size + 1)
    if seed_points is None and not 1 <= n_seeds <= candidates:
        raise ValueError(f"n_seeds must be 1 to {candidates} (the positions with a whole "
                         f"{patch_size} x {patch_size} patch), got {n_seeds}")
    if budget < 0:
        raise ValueError(f"budget must be 0 or more measurements, got {budget}")


def adaptive_experiment(
    scalarizer: str | dict | None = None,
    policy: str | dict | None = None,
    patch_size: int = 5,
    n_seeds: int = 10,
    budget: int = 100,
    seed: int = 0,
    seed_points: list | None = None,
    agent_options: dict | None = None,
    md: dict | None = None,
):
    """Human-in-the-loop DKL experiment on the profile's microscope, as one run.

    Parameters
    ----------
    scalarizer : str or dict, optional
        A preset name of the data set (``"cu_l23"``) or a spec such as
        ``{"kind": "band_integral", "window": [930, 1000]}`` (eV); default:
        the data set's own.
    policy : str or dict, optional
        A policy kind (``"ucb"``) or spec (``{"kind": "ucb", "beta": 2.0}``);
        default expected improvement with ``xi = 0.01``.
    patch_size : int
        N of the N x N HAADF patches (pixels).
    n_seeds : int
        Number of random seed points.
    budget : int
        Measurements after the seed points.
    seed : int
        Seed of the seed points and of the agent.
    seed_points : list of [x, y], optional
        Seed positions in nm instead of random ones.
    agent_options : dict, optional
        Extra agent settings, e.g. ``{"model_settings": {"initial_iterations": 30}}``.
    md : dict, optional
        Extra start-document metadata.
    """
    spec = resolve_scalarizer(scalarizer, spectrum_image)  # noqa: F821
    if isinstance(policy, str):
        policy = {"kind": policy}
    _check_adaptive(policy, patch_size, n_seeds, budget, seed_points)
    return (yield from hae_plans.adaptive_experiment(
        stem_scan, haadf, eels, scalarizer=spec, policy=policy,  # noqa: F821
        patch_size=patch_size, n_seeds=n_seeds, budget=budget, seed=seed,
        seed_points=seed_points, control=experiment_control, agent_options=agent_options,
        md=_metadata(md)))


def grid_experiment(
    scalarizer: str | dict | None = None,
    step: int = 1,
    budget: int | None = None,
    md: dict | None = None,
):
    """Measure every ``step``-th pixel along x and y, row by row, as one run.

    Parameters
    ----------
    scalarizer : str or dict, optional
        Preset name or spec stored with each measurement; default: the data
        set's own.
    step : int
        Grid step (pixels).
    budget : int, optional
        Stop after this many measurements.
    md : dict, optional
        Extra start-document metadata.
    """
    spec = resolve_scalarizer(scalarizer, spectrum_image)  # noqa: F821
    return (yield from hae_plans.grid_experiment(
        stem_scan, haadf, eels, scalarizer=spec, step=step, budget=budget,  # noqa: F821
        md=_metadata(md)))


def random_experiment(
    budget: int,
    seed: int = 0,
    scalarizer: str | dict | None = None,
    md: dict | None = None,
):
    """Measure ``budget`` distinct pixels in a seeded random order, as one run.

    Parameters
    ----------
    budget : int
        Number of measurements.
    seed : int
        Seed of the order.
    scalarizer : str or dict, optional
        Preset name or spec stored with each measurement.
    md : dict, optional
        Extra start-document metadata.
    """
    spec = resolve_scalarizer(scalarizer, spectrum_image)  # noqa: F821
    return (yield from hae_plans.random_experiment(
        stem_scan, haadf, eels, budget=budget, seed=seed, scalarizer=spec,  # noqa: F821
        md=_metadata(md)))

