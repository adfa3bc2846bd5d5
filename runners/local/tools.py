"""The runner tools kappa builds or fetches once per machine, from the registries the
machine reaches (never a download of a prebuilt binary):

* **Prism**, Beam's portable local runner, built from Beam's Go module at the version of
  the installed ``apache-beam`` package, with kappa's fix (``prism.patch``): a split
  bundle no longer frees a key it still runs, nor writes back one it gave away.
* **Beam's Flink job server** (an embedded Flink, or the gateway to a remote cluster),
  assembled from Maven Central; see ``flink-jobserver-pom.xml`` for why it is assembled.
* **Beam's Python SDK harness boot program** (``sdks/python/container``, the entry point
  of Beam's Python worker image), built from the same Go module: what a remote runner's
  PROCESS environment starts to run a Python worker (``process_environment``).

Both live in Beam's own cache (``~/.apache_beam/cache``), so every checkout on the
machine shares them. ``KAPPA_PRISM`` / ``KAPPA_FLINK_JOB_SERVER`` point at others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

from kappa.runners.errors import KappaError

__all__ = ["BEAM_VERSION", "FLINK_JOB_SERVER_BEAM", "FLINK_VERSION", "flink_job_server_jar", "install_flink_job_server",
           "install_prism", "install_python_boot", "prism_binary", "process_environment", "python_boot_binary"]

BEAM_VERSION = version("apache-beam")  # not apache_beam.__version__: importing Beam takes seconds
PRISM_MODULE_ROOT = "github.com/apache/beam/sdks/v2"
FLINK_VERSION = "1.19"
FLINK_JOB_SERVER_BEAM = "2.62.0"  # see flink-jobserver-pom.xml
_POM = Path(__file__).with_name("flink-jobserver-pom.xml")
_CACHE = Path.home() / ".apache_beam" / "cache"


_PRISM_PATCH = Path(__file__).with_name("prism.patch")


def prism_binary() -> Path:
    """The patched prism; its name carries the patch's hash, so a changed patch is rebuilt."""
    patch = hashlib.sha256(_PRISM_PATCH.read_bytes()).hexdigest()[:8]
    return Path(os.environ.get("KAPPA_PRISM")
                or _CACHE / "prism" / "bin" / f"prism-kappa-v{BEAM_VERSION}-{patch}")


def flink_job_server_jar() -> Path:
    if os.environ.get("KAPPA_FLINK_JOB_SERVER"):
        return Path(os.environ["KAPPA_FLINK_JOB_SERVER"])
    name = f"beam-runners-flink-{FLINK_VERSION}-job-server-{FLINK_JOB_SERVER_BEAM}"
    return _CACHE / "jars" / f"kappa-{name}" / f"{name}.jar"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"kappa: {text}", file=sys.stderr, flush=True)


def _run(what: str, cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise KappaError(f"{what} failed: {' | '.join(tail)}")


def _go() -> str:
    go = shutil.which("go") or next((g for g in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if Path(g).is_file()),
                                    None)
    if not go:
        raise KappaError("Go not found: it is needed once, to build Beam's prism runner and Python worker boot")
    return go


def install_prism(quiet: bool = False) -> Path:
    """Build Beam's prism runner from Beam's Go module, with kappa's patch (once per Beam version)."""
    binary = prism_binary()
    if binary.is_file():
        return binary
    go = _go()
    _say(quiet, f"building Beam's prism runner v{BEAM_VERSION} with kappa's fixes (once, a few minutes) ...")
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    binary.parent.mkdir(parents=True, exist_ok=True)
    build = binary.parent / f".build-{os.getpid()}"
    try:
        download = subprocess.run([go, "mod", "download", "-json", f"{PRISM_MODULE_ROOT}@v{BEAM_VERSION}"],
                                  capture_output=True, text=True, env=env, cwd=binary.parent)
        if download.returncode != 0:
            raise KappaError(f"downloading Beam's Go module failed: {download.stdout.strip() or download.stderr.strip()}")
        module = Path(json.loads(download.stdout)["Dir"])
        shutil.copytree(module / "go", build / "go")
        for name in ("go.mod", "go.sum"):
            shutil.copy(module / name, build / name)
        for path in build.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
        _run(f"applying {_PRISM_PATCH.name} to Beam {BEAM_VERSION}'s prism (does this Beam version need it?)",
             ["git", "apply", str(_PRISM_PATCH)], cwd=build,
             env={**os.environ, "GIT_CEILING_DIRECTORIES": str(build.parent)})  # never a repository above
        _run("building prism", [go, "build", "-o", str(binary) + ".partial", "./go/cmd/prism"], env=env, cwd=build)
        os.replace(str(binary) + ".partial", binary)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return binary


def python_boot_binary() -> Path:
    return Path(os.environ.get("KAPPA_PYTHON_BOOT") or _CACHE / "python-boot" / f"boot-v{BEAM_VERSION}")


def install_python_boot(quiet: bool = False) -> Path:
    """Build Beam's Python SDK harness boot program from Beam's Go module (once per Beam version)."""
    binary = python_boot_binary()
    if binary.is_file():
        return binary
    _say(quiet, f"building Beam's Python worker boot program v{BEAM_VERSION} (once) ...")
    binary.parent.mkdir(parents=True, exist_ok=True)
    build = binary.parent / f".build-{os.getpid()}"
    try:
        _run("building Beam's Python worker boot program",
             [_go(), "install", f"{PRISM_MODULE_ROOT}/python/container@v{BEAM_VERSION}"],
             env={**os.environ, "GOBIN": str(build), "GOFLAGS": "-mod=mod"}, cwd=binary.parent)
        os.replace(build / "container", binary)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return binary


def process_environment() -> str:
    """``--environment-config`` of a PROCESS environment running Python workers of this
    installation: Beam's boot program, which fetches the job's staged files and starts
    ``python -m apache_beam.runners.worker.sdk_worker_main`` with the first ``python`` on
    PATH, so PATH leads to this interpreter (kappa importable), and no venv of its own
    (the boot would make one in /opt/apache/beam-venv, without kappa)."""
    return json.dumps({"command": str(python_boot_binary()),
                       "env": {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                               "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1"}})


def install_flink_job_server(quiet: bool = False) -> Path:
    """Copy the Flink runner and its runtime jars from Maven Central and write the launcher jar."""
    jar = flink_job_server_jar()
    if jar.is_file():
        return jar
    mvn = shutil.which("mvn")
    if not mvn:
        raise KappaError("Maven (mvn) not found: it is needed once, to fetch Beam's Flink job server")
    _say(quiet, f"fetching Beam's Flink {FLINK_VERSION} job server ({FLINK_JOB_SERVER_BEAM}) from Maven Central (once) ...")
    lib = jar.parent / "lib"
    if lib.exists():
        shutil.rmtree(lib)  # a partial earlier attempt
    lib.mkdir(parents=True)
    _run("fetching the Flink job server with Maven",
         [mvn, "-B", "-q", "-f", str(_POM), "dependency:copy-dependencies",
          f"-DoutputDirectory={lib}", "-DincludeScope=runtime"])
    class_path = " ".join(f"lib/{p.name}" for p in sorted(lib.glob("*.jar")))
    manifest = ("Manifest-Version: 1.0\r\n"
                "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver\r\n"
                + _wrap_manifest_line(f"Class-Path: {class_path}") + "\r\n")
    partial = jar.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as out:
        out.writestr("META-INF/MANIFEST.MF", manifest)
    os.replace(partial, jar)
    return jar


def _wrap_manifest_line(line: str) -> str:
    """Manifest lines are at most 72 bytes; longer ones continue on lines starting with a space."""
    chunks, first = [], True
    while line:
        size = 72 if first else 71
        chunks.append(("" if first else " ") + line[:size])
        line, first = line[size:], False
    return "\r\n".join(chunks)
