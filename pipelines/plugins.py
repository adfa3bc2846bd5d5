"""Your own pipeline: ``--pipeline my_package.my_module:MyPipeline`` (importable from the
current directory or the installed packages) or ``--pipeline path/to/file.py:MyPipeline``.

The class must subclass :class:`kappa.pipelines.base.WindowedPipeline` (set ``name``,
``input_schema``, ``DEFAULTS`` and the hooks ``key_of``, ``value_of``, ``aggregation``,
``values``); kappa then gives it everything a built-in pipeline has: batch windowing in
replays, the per-key engine live, durable commits, dead letters, result ids. A module
loaded from a file is pickled with the job by value, so remote workers need no copy of
it; a module of a package is pickled by reference, as Beam does (workers must have the
package installed).

Any other ``beam.PTransform`` subclass (records in, ``{"results", "dead_letters"}`` out)
is taken too, for replays: see pipelines/transform.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import apache_beam as beam

from kappa.pipelines.base import WindowedPipeline
from kappa.transforms.config import ConfigError

__all__ = ["load_pipeline"]


def load_pipeline(spec: str) -> type:
    """The class ``spec`` (``module:Class`` or ``file.py:Class``) names; ConfigError naming what is wrong."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigError(f"--pipeline {spec}: write module.path:ClassName or path/to/file.py:ClassName")
    module = _module_of_file(spec, Path(where)) if where.endswith(".py") else _module_of_package(spec, where)
    found = getattr(module, attr, None)
    if found is None:
        raise ConfigError(f"--pipeline {spec}: {where} has no {attr!r}")
    if isinstance(found, type) and issubclass(found, beam.PTransform) and not issubclass(found, WindowedPipeline):
        from kappa.pipelines.transform import transform_pipeline

        return transform_pipeline(found)  # windows by itself: replays only (pipelines/transform.py)
    if not (isinstance(found, type) and issubclass(found, WindowedPipeline)):
        raise ConfigError(f"--pipeline {spec}: {attr} is neither a kappa.pipelines.base.WindowedPipeline nor a "
                          "beam.PTransform subclass")
    for hook in ("key_of", "aggregation", "values"):
        if getattr(found, hook) is getattr(WindowedPipeline, hook):
            raise ConfigError(f"--pipeline {spec}: {attr} does not define {hook}() (see examples/page_views.py)")
    if not found.name:
        raise ConfigError(f"--pipeline {spec}: {attr} has no name (set name = \"...\"; it goes into every result)")
    return found


def _module_of_package(spec: str, name: str):
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` has it
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ConfigError(f"--pipeline {spec}: no module {err.name!r} (run kappa where it can be imported, "
                          "or give the file: path/to/file.py:ClassName)") from None


def _module_of_file(spec: str, path: Path):
    from apache_beam.internal.cloudpickle import cloudpickle

    if not path.is_file():
        raise ConfigError(f"--pipeline {spec}: no file {path}")
    name = f"kappa_user_pipeline_{path.stem}"
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as err:  # the user's code: say where, without kappa's frames
        line = getattr(err, "lineno", None) or _line_in(err, path)
        raise ConfigError(f"--pipeline {spec}: loading {path} failed{f' at line {line}' if line else ''}: "
                          f"{type(err).__name__}: {err}") from None
    cloudpickle.register_pickle_by_value(module)  # the job carries the code
    return module


def _line_in(err: Exception, path: Path) -> int | None:
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return frames[-1].lineno if frames else None
