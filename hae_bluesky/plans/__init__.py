"""Bluesky plans: the adaptive DKL experiment and its grid and random baselines."""

from hae_bluesky.plans.adaptive import AgentFeeder, StepTimes, adaptive_experiment
from hae_bluesky.plans.baselines import grid_experiment, random_experiment
from hae_bluesky.plans.control import ExperimentControl, NoExperimentRunning

__all__ = [
    "AgentFeeder",
    "ExperimentControl",
    "NoExperimentRunning",
    "StepTimes",
    "adaptive_experiment",
    "grid_experiment",
    "random_experiment",
]
