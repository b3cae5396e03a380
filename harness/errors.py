"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input or environment, with the fix in its message."""
