class UserError(Exception):
    """A mistake in the user's input: message says what, where, what to do."""
