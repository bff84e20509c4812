"""The Loop methods for TCP and Unix-socket connections, servers, TLS and pipes."""


class StreamsMixin:
    """Mixed into asyncloop.Loop."""
