"""The code keeps the project's own bar: ruff's lint and format, and mypy over the packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_lint_and_format():
    files = python_files()
    lint = run("ruff", "check", *files)
    assert lint.returncode == 0, lint.stdout
    formatted = run("ruff", "format", "--check", *files)
    assert formatted.returncode == 0, formatted.stdout


def test_mypy_over_the_core_and_the_builtin_plugins():
    result = run("mypy")
    assert result.returncode == 0, result.stdout
