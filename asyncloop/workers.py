"""Gunicorn worker classes whose servers run on asyncloop.

    gunicorn -k asyncloop.workers.UvicornWorker app:app          # ASGI
    gunicorn -k asyncloop.workers.AiohttpWorker app:make_app     # aiohttp.web

UvicornWorker is uvicorn's gunicorn worker (from the uvicorn-worker package,
else the older uvicorn.workers module) with its loop set to asyncloop: the
original hard-codes loop="auto", which picks uvloop when it is installed.
AiohttpWorker is aiohttp's GunicornWebWorker on asyncloop, as aiohttp's own
GunicornUVLoopWebWorker is on uvloop.

Each class is made when it is first looked up, and imports only its own
framework: importing this module needs neither uvicorn nor aiohttp.
"""
import asyncio
import functools
import warnings

__all__ = ('UvicornWorker', 'AiohttpWorker')

# uvicorn's Config(loop=...) takes an import string for a loop factory.
UVICORN_LOOP = 'asyncloop:new_event_loop'


def _missing(name, packages, error):
    return ImportError(
        f'asyncloop.workers.{name} needs {packages}: '
        f'pip install {packages} ({error})', name=error.name)


def _uvicorn_base():
    """The UvicornWorker class of the installed uvicorn."""
    try:
        from uvicorn_worker import UvicornWorker
        return UvicornWorker
    except ImportError:
        pass
    try:
        # Deprecated by uvicorn in favour of the uvicorn-worker package,
        # but what older installations have.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            from uvicorn.workers import UvicornWorker
        return UvicornWorker
    except ImportError as error:
        raise _missing('UvicornWorker', 'uvicorn-worker', error) from error


@functools.cache
def _uvicorn_worker():
    base = _uvicorn_base()

    class UvicornWorker(base):
        """uvicorn's gunicorn worker, serving on asyncloop."""

        CONFIG_KWARGS = {**base.CONFIG_KWARGS, 'loop': UVICORN_LOOP}

    UvicornWorker.__module__ = __name__
    return UvicornWorker


@functools.cache
def _aiohttp_worker():
    try:
        from aiohttp.worker import GunicornWebWorker
    except ImportError as error:
        raise _missing('AiohttpWorker', 'aiohttp gunicorn', error) from error
    import asyncloop

    class AiohttpWorker(GunicornWebWorker):
        """aiohttp's gunicorn worker, serving on asyncloop."""

        def init_process(self):
            # As GunicornUVLoopWebWorker does for uvloop: the policy makes
            # the loop GunicornWebWorker.init_process() creates after the
            # fork, and any the application creates, asyncloop loops.
            asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())
            super().init_process()

    AiohttpWorker.__module__ = __name__
    return AiohttpWorker


_FACTORIES = {'UvicornWorker': _uvicorn_worker,
              'AiohttpWorker': _aiohttp_worker}


def __getattr__(name):
    # gunicorn's -k asyncloop.workers.X imports this module and looks X up.
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise AttributeError(
            f'module {__name__!r} has no attribute {name!r}') from None
    return factory()


def __dir__():
    return sorted(list(globals()) + list(__all__))
