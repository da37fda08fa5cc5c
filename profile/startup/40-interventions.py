"""Intervention functions for the running adaptive experiment.

Through the queueserver (``function_execute`` with
``run_in_background=True``; ``hae queue set-policy`` and friends do that) or
called directly in IPython: ``set_policy``, ``set_scalarizer``,
``set_patch_size``, ``add_points_of_interest``, ``stop_experiment`` and the
read-only ``agent_state``. See :mod:`hae_bluesky.interventions`.
"""

import getpass

from bluesky_queueserver import is_re_worker_active

from hae_bluesky.interventions import Interventions

if is_re_worker_active():
    # The queueserver does not pass the requesting user to a function:
    # ``hae queue`` sends it in the ``user`` and ``group`` keywords.
    interventions = Interventions(
        experiment_control, spectrum_image.metadata.get("dataset", ""))  # noqa: F821
else:
    interventions = Interventions(
        experiment_control, spectrum_image.metadata.get("dataset", ""),  # noqa: F821
        user=getpass.getuser(), group="console")

set_policy = interventions.set_policy
set_scalarizer = interventions.set_scalarizer
set_patch_size = interventions.set_patch_size
add_points_of_interest = interventions.add_points_of_interest
stop_experiment = interventions.stop_experiment
agent_state = interventions.agent_state
