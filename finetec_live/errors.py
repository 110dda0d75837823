"""Errors a user can cause, reported as one line by the command-line tools."""


class FinetecError(Exception):
    """A problem the user can fix: the message names it and says how.

    The command-line entry points print ``error: <message>`` and exit non-zero,
    without a traceback.
    """
