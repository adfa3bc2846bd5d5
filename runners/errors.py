"""The error users see: one line, no traceback."""

__all__ = ["KappaError"]


class KappaError(Exception):
    """A problem the user can fix (bad input, a port in use, no Java).

    The CLI prints ``kappa: error: <message>`` and exits non-zero; the message
    must name what was wrong and, where there is one, the flag that sets it.
    """
