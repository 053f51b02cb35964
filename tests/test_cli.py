"""The command line as a shell runs it: a separate process with real pipes."""

from __future__ import annotations

import os
import subprocess
import sys

# Only what the command needs, so that no variable of the shell running the suite changes it.
ENV = {"PATH": "/usr/bin:/bin:/usr/sbin"}


def test_an_output_command_stops_quietly_when_its_reader_went_away():
    """``python -m lowcode_runtime plugins --json | head -1``: no error line, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "lowcode_runtime", "plugins", "--json"],
            env=ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)

    assert result.stderr == ""
    assert result.returncode == 1


def test_an_output_command_with_a_reader_prints_everything():
    result = subprocess.run(
        [sys.executable, "-m", "lowcode_runtime", "plugins", "--json"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{") and '"types"' in result.stdout
