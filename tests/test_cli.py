"""The ``hae`` entry point as a shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HAE = Path(sys.executable).with_name("hae")


def test_closed_output_pipe_ends_quietly_with_status_1():
    # The reader of stdout is gone before the first line, as with `hae data list | head -0`.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        finished = subprocess.run([str(HAE), "data", "list"], stdout=writer,
                                  stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(writer)

    assert finished.stderr == ""
    assert finished.returncode == 1
