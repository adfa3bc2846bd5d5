"""The ``kappa`` command line: one parser, one sub-command per module.

User mistakes end in one line on stderr (``kappa: error: ...``): exit 2 for usage
errors (argparse's, and :class:`UsageError`: found before any work starts), exit 1
for run failures (an unreachable broker, a failed job), 0 for success.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from kappa.replay.errors import ReplayError
from kappa.runners import cliargs
from kappa.runners.children import end_children
from kappa.runners.errors import KappaError, UsageError
from kappa.schemas.registry import RegistryUnavailable

__all__ = ["build_parser", "main"]


#: Each command's module, in the order of the help (read, replay, live and demo import
#: Beam, which takes a second or two; the others start without it).
_COMMANDS = {"local": "local", "produce": "produce", "plan": "plan", "read": "read",
             "replay": "run", "live": "run", "verify": "verify", "demo": "demo"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (a known ``command`` given) one that knows that command's module only."""
    parser = argparse.ArgumentParser(
        prog="kappa",
        description=(
            "Kappa-architecture event replay on Apache Beam: run one set of streaming pipelines "
            "over live Kafka or Pub/Sub data, and over history by replaying the log from a chosen point."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = [_COMMANDS[command]] if command in _COMMANDS else dict.fromkeys(_COMMANDS.values())
    for name in names:
        importlib.import_module(f"kappa.runners.commands.{name}").add_parsers(sub)
    return parser


# Flags whose values may start with "-" (a duration ago: --from -PT6H); argparse would
# take such a value for a flag, so it is glued on: --from=-PT6H.
_AGO_FLAGS = ("--from", "--start")


def _glue_ago_values(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if out and out[-1] in _AGO_FLAGS and arg.startswith("-") and not arg.startswith("--"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


_USER_STDERR = None  #: where kappa's last line goes once an interrupt has hushed everything else


def _interrupt(signum, frame):
    """SIGINT or SIGTERM: stop as Ctrl-C does. From here the runner's threads, cut off, have
    nothing to tell the user (their tracebacks would bury kappa's one line; Beam's logs are
    in the run directory): standard error goes to /dev/null, kappa's own line does not."""
    global _USER_STDERR
    if _USER_STDERR is None:
        sys.stderr.flush()
        _USER_STDERR = os.fdopen(os.dup(2), "w")
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        threading.excepthook = lambda args: None
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = _glue_ago_values(list(sys.argv[1:] if argv is None else argv))
    command = argv[0] if argv else None
    parser = build_parser(command)
    try:
        if _COMMANDS.get(command) == "run":
            from kappa.runners.commands.run_flags import preload_config

            preload_config(argv)
        args = parser.parse_args(argv)
        cliargs.apply_kafka_flags(args)
        cliargs.apply_registry_flags(args)
        return args.run(args)
    except UsageError as err:
        print(f"kappa: error: {err}", file=sys.stderr)
        return 2
    except (KappaError, ReplayError, RegistryUnavailable) as err:
        print(f"kappa: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kappa: interrupted", file=_USER_STDERR or sys.stderr, flush=True)
        return 130


def entry() -> None:
    """The ``kappa`` command: SIGTERM stops it as Ctrl-C does (a live run drains on
    either), and the runner processes it started (prism, a Flink job server) end with it."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        code = main()
    except BaseException:  # a bug: its traceback is shown, the runner's processes still end
        end_children()
        raise
    # kappa has said its last line. Runner threads cut off by an interrupt have nothing to
    # tell the user (their tracebacks would bury that line); Beam's logs are in the run directory.
    sys.stdout.flush()
    sys.stderr.flush()
    threading.excepthook = lambda args: None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    end_children()
    logging.shutdown()
    os._exit(code)  # not sys.exit: a runner's lingering non-daemon threads must not keep kappa alive


if __name__ == "__main__":
    entry()
