"""RunEngine of the hAE profile, for IPython and the queueserver alike.

Load with ``ipython --profile-dir=profile`` or
``start-re-manager --startup-dir profile/startup``.
"""

import logging
import os

from bluesky import RunEngine
from bluesky_queueserver import is_re_worker_active

RE = RunEngine({})
RE.md["profile"] = "hae"

if not is_re_worker_active():
    # In a terminal: progress bars for moves and acquisitions, and the
    # operator-level log (run started, policy changed by whom) on screen.
    from bluesky.utils import ProgressBarManager

    RE.waiting_hook = ProgressBarManager()
    logging.basicConfig(level=os.environ.get("HAE_LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
    # One line per Tiled request or database migration drowns the operator log.
    for chatty in ("httpx", "alembic", "uvicorn.access"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
