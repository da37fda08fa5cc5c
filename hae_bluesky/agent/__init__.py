"""The deep kernel learning agent: model, acquisition policies and the agent itself.

Plain Python, numpy, torch and gpytorch: nothing here imports bluesky or ophyd.
"""

from hae_bluesky.agent.agent import Decision, DKLAgent, Measurement
from hae_bluesky.agent.model import DeepKernelModel, FitResult, ModelSettings, Posterior
from hae_bluesky.agent.policy import MODIFIERS, POLICY_KINDS, Policy, policy_from_spec

__all__ = [
    "MODIFIERS",
    "POLICY_KINDS",
    "DKLAgent",
    "Decision",
    "DeepKernelModel",
    "FitResult",
    "Measurement",
    "ModelSettings",
    "Policy",
    "Posterior",
    "policy_from_spec",
]
