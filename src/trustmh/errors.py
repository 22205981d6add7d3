"""Errors that reach the user as one clear line (exit code 2), never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a flag, a config file, a dataset file, a missing key.

    The message must name what is wrong and how to fix it; the CLI prints it on one line and
    exits with code 2.
    """

    exit_code = 2


class DataError(UserError):
    """A dataset file is missing, corrupt or does not match its schema."""


class FatalBackendError(Exception):
    """The backend cannot serve any request (bad key, unknown model): stop the run, keep results."""


class StorageError(UserError):
    """The run database cannot be written (disk full, read-only, I/O error): the run stops; what
    was committed is kept and the same command resumes once the cause is fixed."""
