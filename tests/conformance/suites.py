"""Which parts of test.test_asyncio run, and how each gets the chosen loop.

A suite is one module of test.test_asyncio plus a recipe that turns it into
a unittest suite with the chosen loop wired in:

``plain``        the module as it is; its loops come from the policy, which
                 wiring.py points at the chosen loop.
``loop_mixins``  for modules whose tests live in mixins that get their loop
                 from a hook (``create_event_loop()`` in test_events): the
                 stock concrete classes, one per selector, are dropped and one
                 class per mixin combination is built on test_utils.TestCase,
                 with the hook returning the chosen loop.
``loop_classes`` for modules whose concrete classes hold tests too
                 (``new_loop()`` in the functional tests): the stock class is
                 subclassed with the hook overridden.
``runners``      test_runners, whose hook builds a mocked stock loop.

Adding a suite is adding an entry to SUITES; DEFAULT lists the ones run
when no --suites option is given.
"""

import dataclasses
import importlib
import unittest
from typing import Callable, Optional

PACKAGE = "test.test_asyncio"


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    module: str
    recipe: Callable
    note: str = ""
    cost: int = 1  # rough relative run time, to start long suites first

    def load(self, hooks):
        module = importlib.import_module(f"{PACKAGE}.{self.module}")
        return self.recipe(module, hooks)


# --- recipes ---------------------------------------------------------------

def plain(module, hooks):
    """The module as it is: its loops come from the (rewired) policy."""
    return unittest.defaultTestLoader.loadTestsFromModule(module)


def loop_mixins(classes, hook, base=None, select=None):
    """Recipe: run the module's loop mixins on the chosen loop.

    classes: {new class name: names of the mixins it combines}.
    hook: name of the method the mixins call to get a loop.
    base: TestCase class to combine with (default test_utils.TestCase, which
        is what the stock concrete classes use for loop mixins).
    select: predicate on "Class.test_method"; tests it rejects are left out
        (None keeps all).  It sees the built classes and the module's other
        classes alike.
    """
    def recipe(module, hooks):
        mixins = {name: [getattr(module, m) for m in names]
                  for name, names in classes.items()}
        all_mixins = tuple(m for group in mixins.values() for m in group)
        # The stock concrete classes (one per selector) are replaced by ours.
        kept = [cls for cls in _test_classes(module)
                if not issubclass(cls, all_mixins)]
        test_case = base or _shared_test_case()
        built = [_combine(module, name, (*group, test_case), hook, hooks)
                 for name, group in mixins.items()]
        tests = unittest.TestSuite()
        for cls in kept + built:
            for test in _load(cls):
                name = f"{type(test).__name__}.{test._testMethodName}"
                if select is None or select(name):
                    tests.addTest(test)
        return tests
    return recipe


def loop_classes(hook, classes):
    """Recipe: subclass the module's stock loop classes to use the chosen loop.

    For modules whose concrete classes (not only their mixins) hold tests:
    classes maps a new class name to the stock class it replaces, whose
    `hook` method is overridden to return the chosen loop.  The module's
    other classes run as they are.
    """
    def recipe(module, hooks):
        replaced = {getattr(module, stock): name
                    for name, stock in classes.items()}
        tests = unittest.TestSuite()
        for cls in _test_classes(module):
            if cls in replaced:
                cls = _combine(module, replaced[cls], (cls,), hook, hooks)
            tests.addTests(_load(cls))
        return tests
    return recipe


def _load(cls):
    return unittest.defaultTestLoader.loadTestsFromTestCase(cls)


def _test_classes(module):
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, unittest.TestCase):
            if value.__module__ == module.__name__:
                yield value


def _shared_test_case():
    from test.test_asyncio import utils as test_utils
    return test_utils.TestCase


def _combine(module, name, bases, hook, hooks):
    """A test class on `bases` whose `hook` method makes the chosen loop."""
    def make_loop(self):
        return hooks.new_loop()

    return type(name, bases, {
        hook: make_loop,
        # Test ids read as if the class were defined in the module itself.
        "__module__": module.__name__,
        "__qualname__": name,
    })


def runners(module, hooks):
    """test_runners: run BaseTest's loops on the chosen loop.

    BaseTest.new_loop() builds a bare BaseEventLoop with a mocked selector;
    tearDown then checks that the loop was closed and that asyncio.run()
    called shutdown_asyncgens(), which the stock hook records in a
    ``shutdown_ag_run`` attribute, and several tests set attributes on the
    loop.  The replacement keeps that contract on the chosen loop.
    """
    def new_loop(self):
        loop = hooks.new_attribute_friendly_loop()
        if loop is None:  # cannot carry the bookkeeping attribute
            return stock_new_loop(self)
        loop.shutdown_ag_run = False
        real_shutdown_asyncgens = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real_shutdown_asyncgens()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    stock_new_loop = module.BaseTest.new_loop
    module.BaseTest.new_loop = new_loop
    return plain(module, hooks)


# --- test_events -----------------------------------------------------------

# Words in "Class.test_name" that mark network, pipe, subprocess, sendfile
# or TLS work: those belong to test_events_network.  Everything else
# (scheduling, running, executor, signals, add_reader/add_writer on a
# socketpair used as plain file descriptors, closing, policies, handles) is
# the loop's core.
_NETWORK_WORDS = ("connection", "server", "ssl", "datagram", "accepted_socket",
                  "pipe", "pty", "subprocess", "sendfile", "sock", "unix")
# Core-looking names that still exercise a network API.
_NETWORK_TESTS = {"test_prompt_cancellation"}  # loop.sock_recv()


def is_network_test(name):
    method = name.rpartition(".")[2]
    return method in _NETWORK_TESTS or \
        any(word in name.lower() for word in _NETWORK_WORDS)


def is_core_test(name):
    return not is_network_test(name)


_EVENT_LOOP_TESTS = {"EventLoopTests": ("EventLoopTestsMixin",
                                        "SubprocessTestsMixin")}


# --- the registry ----------------------------------------------------------

def _entries():
    yield Suite("test_tasks", "test_tasks", plain, cost=5)
    yield Suite("test_futures2", "test_futures2", plain)
    yield Suite("test_locks", "test_locks", plain)
    yield Suite("test_queues", "test_queues", plain)
    yield Suite("test_taskgroups", "test_taskgroups", plain)
    yield Suite("test_timeouts", "test_timeouts", plain)
    yield Suite("test_waitfor", "test_waitfor", plain)
    yield Suite("test_context", "test_context", plain)
    yield Suite("test_threads", "test_threads", plain)
    yield Suite("test_runners", "test_runners", runners)
    yield Suite("test_events", "test_events", loop_mixins(
        _EVENT_LOOP_TESTS, "create_event_loop", select=is_core_test),
        note="the whole module minus its network, pipe and subprocess tests",
        cost=3)
    # Network, pipe and subprocess suites.
    yield Suite("test_events_network", "test_events", loop_mixins(
        _EVENT_LOOP_TESTS, "create_event_loop", select=is_network_test),
        note="the network, pipe and subprocess tests of test_events")
    yield Suite("test_sock_lowlevel", "test_sock_lowlevel", loop_mixins(
        {"SockTests": ("BaseSockTestsMixin",)}, "create_event_loop"))
    yield Suite("test_sendfile", "test_sendfile", loop_mixins(
        {"SendfileTests": ("SendfileTestsBase",)}, "create_event_loop"))
    yield Suite("test_server", "test_server", loop_classes(
        "new_loop", {"StartServerTests": "SelectorStartServerTests"}))
    yield Suite("test_buffered_proto", "test_buffered_proto", loop_classes(
        "new_loop",
        {"BufferedProtocolTests": "BufferedProtocolSelectorTests"}))
    yield Suite("test_sslproto", "test_sslproto", loop_classes(
        "new_loop", {"StartTLSTests": "SelectorStartTLSTests"}))
    yield Suite("test_streams", "test_streams", plain)
    yield Suite("test_ssl", "test_ssl", plain)
    yield Suite("test_unix_events", "test_unix_events", plain)
    yield Suite("test_subprocess", "test_subprocess", plain)


SUITES = {suite.name: suite for suite in _entries()}

DEFAULT = tuple(SUITES)


def get(name) -> Optional[Suite]:
    return SUITES.get(name)
