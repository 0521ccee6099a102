"""Errors a user can cause with a router folder: each names the file and the reason."""


class RouterError(RuntimeError):
    """A router folder that is broken: unreadable weights, config or index."""


class RouterNotFoundError(RouterError, FileNotFoundError):
    """A router folder (or one of its files) that does not exist."""
