"""Virtualenvs of the benchmarks' own (peers, the charts), never kappa's dependencies."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def venv(name: str, requirements: Path, say=print) -> Path:
    """bench/.venvs/<name> with exactly ``requirements`` installed (redone when they change)."""
    where = VENVS / name
    python = where / "bin" / "python"
    stamp = where / ".requirements.sha256"
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    say(f"setting up {where.relative_to(BENCH.parent)} from {requirements.relative_to(BENCH.parent)} ...")
    if not python.exists():
        subprocess.run([str(BASE_PYTHON), "-m", "venv", str(where)], check=True, capture_output=True, text=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pip install -r {requirements.relative_to(BENCH.parent)} failed: {done.stderr.strip()[-600:]}")
    stamp.write_text(want)
    return python
