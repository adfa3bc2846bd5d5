"""One import name: the installed package is ``kappa``; its subpackages are the
repository's folders, and no module of the project imports them by their bare names
(``pipelines``, ``schemas``, ...), which would collide with a user's own packages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("pipelines", "replay", "runners", "schemas", "transforms")
BARE = re.compile(rf"^\s*(from|import) ({'|'.join(FOLDERS)})\b", re.MULTILINE)


def test_no_module_of_the_project_imports_a_folder_by_its_bare_name():
    sources = [p for folder in (*FOLDERS, "kappa", "tests", "bench", "examples", "scripts") for p in
               (ROOT / folder).rglob("*.py") if ".venvs" not in p.parts]
    assert len(sources) > 100
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in sources for m in BARE.finditer(p.read_text())]
    assert offenders == []


def test_outside_the_checkout_kappa_imports_and_the_bare_folder_names_do_not():
    probe = ("import importlib.util, kappa.pipelines, kappa.runners.cli, kappa.schemas.catalog as c\n"
             "assert c.load_schema('payment')\n"
             f"print([n for n in {FOLDERS!r} if importlib.util.find_spec(n) is not None])\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_event_time_and_replay_layers_never_import_the_cli_and_runner_layer():
    """Layering: replay/, transforms/, schemas/ and pipelines/ are a library; runners/ (the
    CLI, sinks, the local stack) builds on them, never the other way round."""
    offenders = [f"{p.relative_to(ROOT)}: {line.strip()}" for folder in ("replay", "transforms", "schemas", "pipelines")
                 for p in (ROOT / folder).rglob("*.py") for line in p.read_text().splitlines()
                 if re.match(r"\s*(from|import) kappa\.runners\b", line)]
    assert offenders == []
