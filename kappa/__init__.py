"""kappa: Kappa-architecture event replay on Apache Beam.

The one import name of the project. Its subpackages are the repository's top-level
folders (``kappa.pipelines``, ``kappa.replay``, ``kappa.runners``, ``kappa.schemas``,
``kappa.transforms``): an install maps them here (``pyproject.toml``), so nothing named
``pipelines`` or ``schemas`` lands in site-packages to collide with a user's own.
"""

import os as _os

# From a checkout without an install (``python -m pytest`` at the root), the folders
# beside this one are the subpackages.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "pipelines")):
    __path__.append(_root)
