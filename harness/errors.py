"""The one user-facing error type: the CLI prints its message and exits with code 2."""


class HarnessError(Exception):
    """Bad input from the user (a task file, a flag, a path). The message names the problem and the fix."""

    exit_code = 2
