"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """A problem with the user's input; its message says what is wrong and how to fix it."""
