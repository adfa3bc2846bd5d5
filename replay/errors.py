"""Errors a replay's user can act on. The CLI prints them as one line."""

__all__ = ["NoCommits", "ReplayError"]


class ReplayError(Exception):
    """A replay point that cannot be honoured, a missing topic, an unreachable broker...

    The message names what was wrong and, where there is one, the flag or fallback
    that changes it.
    """


class NoCommits(ReplayError):
    """``group:<g>`` names a group with no committed offset on any partition of the topic."""
