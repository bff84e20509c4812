"""asyncloop: a fast asyncio event loop written in C on top of libuv.

    import asyncloop
    asyncloop.run(main())
"""
import asyncio as _asyncio
import sys as _sys
import warnings as _warnings
from typing import Any as _Any, Callable as _Callable, \
    Coroutine as _Coroutine, TypeVar as _TypeVar

from ._loop import libuv_version
from ._version import __version__
from .loop import Loop

__all__ = ('Loop', 'new_event_loop', 'EventLoopPolicy', 'install', 'run',
           'libuv_version')


_T = _TypeVar('_T')


def new_event_loop() -> Loop:
    """Return a new asyncloop event loop."""
    return Loop()


def run(main: _Coroutine[_Any, _Any, _T], *, debug: bool | None = None,
        loop_factory: _Callable[[], _asyncio.AbstractEventLoop] = new_event_loop,
        **run_kwargs: _Any) -> _T:
    """Run the coroutine main on a new asyncloop loop, as asyncio.run().

    The loop is closed at the end, after the remaining tasks are cancelled
    and the asynchronous generators and the default executor are shut
    down. Keyword arguments other than debug and loop_factory (context=)
    go to asyncio.Runner.run().
    """
    if _asyncio.events._get_running_loop() is not None:
        raise RuntimeError(
            "asyncio.run() cannot be called from a running event loop")
    with _asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
        return runner.run(main, **run_kwargs)


# The Unix policy of the running Python (with its child watcher methods,
# which asyncio keeps until 3.14), else the base policy.
_BasePolicy = (getattr(_asyncio, 'DefaultEventLoopPolicy', None)
               or getattr(_asyncio.events, 'BaseDefaultEventLoopPolicy', None)
               or _asyncio.events._BaseDefaultEventLoopPolicy)


class EventLoopPolicy(_BasePolicy):
    """An event loop policy whose loops are asyncloop loops.

        asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())
    """

    def _loop_factory(self) -> Loop:
        return new_event_loop()


def install() -> None:
    """Make asyncloop the loop of asyncio.run() and new_event_loop().

    Sets the event loop policy, a mechanism deprecated since Python 3.12:
    prefer asyncloop.run() or loop_factory=asyncloop.new_event_loop.
    """
    if _sys.version_info >= (3, 12):
        _warnings.warn('asyncloop.install() is deprecated in favour of '
                       'asyncloop.run() and loop_factory='
                       'asyncloop.new_event_loop', DeprecationWarning,
                       stacklevel=2)
    _asyncio.set_event_loop_policy(EventLoopPolicy())
