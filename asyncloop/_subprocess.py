"""The Loop methods for subprocesses."""


class SubprocessMixin:
    """Mixed into asyncloop.Loop."""
