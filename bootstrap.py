#!/usr/bin/env python3
"""Set up a virtual environment and run the demo or the tests: python3 bootstrap.py demo|test.

Only Python 3.10+ and pip are needed. The environment lives in .venv and is (re)installed
when pyproject.toml changes. PyTorch is pinned to the CPU build on this project's machines;
set DEEPPRIOR_TORCH (e.g. "torch>=2.2") to install another build.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".deepprior-installed"
TORCH = os.environ.get("DEEPPRIOR_TORCH", "torch==2.13.0")


def sh(*command: str | Path) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT)


def ensure_environment() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        sh(sys.executable, "-m", "venv", VENV)
    pip = (PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    sh(*pip, TORCH)
    sh(*pip, "-e", ".[dev]")
    STAMP.write_text(wanted)


def main() -> int:
    commands = {
        "demo": [[BIN / "deepprior", "demo", *sys.argv[2:]]],
        "test": [
            [PYTHON, "-m", "ruff", "check", "src", "tests", "benchmarks", "bootstrap.py"],
            [PYTHON, "-m", "mypy"],
            [PYTHON, "-m", "pytest", *sys.argv[2:]],
        ],
        "setup": [],
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: python3 bootstrap.py {{{'|'.join(commands)}}} [args...]", file=sys.stderr)
        return 2
    ensure_environment()
    try:
        for command in commands[sys.argv[1]]:
            sh(*command)
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
