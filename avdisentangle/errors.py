"""Failures that are expected, not bugs: the command line prints their message as one line.

A traceback helps whoever fixes a bug and buries the message for everyone else, so `main` shows
these as `error: <message>` and exits with their `exit_code`; `--debug` (or AVDISENTANGLE_DEBUG=1)
shows the traceback too.
"""

from __future__ import annotations


class ExpectedFailure(Exception):
    """A run that cannot go on for a reason its message fully explains."""

    exit_code = 1


class UserError(ExpectedFailure, ValueError):
    """Bad input: an option, a config value, a corpus or a file the user pointed at (exit code 2)."""

    exit_code = 2
