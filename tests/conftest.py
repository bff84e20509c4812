"""Fixtures shared by asyncloop's tests.

Behaviour tests take `loop_factory` (or `new_loop`) and run on both the
default asyncio loop and asyncloop: asyncio is the reference, so a test
that fails on the default loop is a wrong test, not a bug of asyncloop.
"""
import asyncio
import gc
import os

import pytest

import asyncloop

LOOP_FACTORIES = {
    'asyncio': asyncio.new_event_loop,
    'asyncloop': asyncloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request):
    """The factory of the loop under test: asyncio's default or asyncloop."""
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def new_loop(loop_factory):
    """Make loops of the kind under test; they are closed at the end."""
    made = []

    def make():
        loop = loop_factory()
        made.append(loop)
        return loop

    yield make
    for loop in made:
        if not loop.is_closed() and not loop.is_running():
            loop.close()
    asyncio.set_event_loop(None)
    gc.collect()


@pytest.fixture
def loop(new_loop):
    """One loop of the kind under test."""
    return new_loop()


@pytest.fixture
def aloop():
    """An asyncloop loop, for tests of asyncloop-only behaviour."""
    loop = asyncloop.new_event_loop()
    yield loop
    if not loop.is_running():
        loop.close()


@pytest.fixture
def pipe():
    """[read end, write end] of an os.pipe(); whichever the test has not
    closed is closed afterwards."""
    r, w = os.pipe()
    fds = [r, w]
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
