"""The errors users see: one line, no traceback."""

__all__ = ["KappaError", "UsageError"]


class KappaError(Exception):
    """A problem the user can fix (a port in use, no Java, an unreachable broker).

    The CLI prints ``kappa: error: <message>`` and exits 1; the message must name
    what was wrong and, where there is one, the flag that sets it.
    """


class UsageError(KappaError):
    """The command as typed cannot work (an unknown scheme, runner or setting, a file
    that does not exist): found before any work starts; the CLI exits 2, like argparse."""
