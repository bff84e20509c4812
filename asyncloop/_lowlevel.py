"""The Loop methods for the sock_* coroutines, UDP endpoints and sock_sendfile."""


class LowLevelMixin:
    """Mixed into asyncloop.Loop."""
