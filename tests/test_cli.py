"""The ``hae`` entry point as a shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hae_bluesky.cli import main

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


@pytest.mark.parametrize("command", [["demo"], ["report", "-1"]])
def test_catalog_folder_and_server_together_are_refused(command, tmp_path, capsys):
    options = ["--catalog", str(tmp_path), "--tiled-uri", "http://127.0.0.1:9/api/v1"]

    assert main([*command, *options]) == 1
    assert "give either --catalog or --tiled-uri, not both" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
