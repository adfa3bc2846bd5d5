"""Where kappa keeps its local state: broker jars and data, logs, the schema registry."""

from __future__ import annotations

import os
from pathlib import Path

from kappa.schemas.registry import is_url

__all__ = ["kappa_home", "default_registry_path"]

_REPO = Path(__file__).resolve().parents[1]


def kappa_home() -> Path:
    """``$KAPPA_HOME``, else ``.kappa/`` in the checkout kappa runs from, else ``~/.kappa``."""
    if os.environ.get("KAPPA_HOME"):
        return Path(os.environ["KAPPA_HOME"]).resolve()
    if (_REPO / "pyproject.toml").is_file():
        return _REPO / ".kappa"
    return Path.home() / ".kappa"


def default_registry_path() -> Path | str:
    """The schema registry of ``$KAPPA_REGISTRY`` (a file or an HTTP registry's URL), else the
    file-backed one shared by producers and readers on this host."""
    chosen = os.environ.get("KAPPA_REGISTRY")
    if chosen and is_url(chosen):
        return chosen
    return Path(chosen or kappa_home() / "schema-registry.json")
