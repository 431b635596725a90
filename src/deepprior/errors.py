"""The one exception type for mistakes a user can fix, and the command's exit codes."""

EXIT_USAGE = 2  # a mistake the user can fix: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: what the run had is kept


class UserError(Exception):
    """A problem with the user's input; its message says what is wrong and how to fix it."""
