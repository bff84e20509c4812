"""Putting the chosen loop under CPython's asyncio test suites.

The suites pick their loop in a handful of ways, and each needs its own
treatment:

* ``asyncio.new_event_loop()`` / ``asyncio.Runner()`` /
  ``IsolatedAsyncioTestCase`` ask the current policy.  The suites reset the
  policy with ``asyncio.set_event_loop_policy(None)`` in setUp, tearDown and
  tearDownModule, which re-creates ``asyncio.DefaultEventLoopPolicy``.  So
  that name itself is made to resolve to a policy for the chosen loop: any
  reset lands on the chosen loop again.
* ``create_event_loop()`` / ``new_loop()`` hooks of the loop mixins get the
  factory returned by ``install()`` (see suites.py).
* ``self.new_test_loop()`` builds a fake-time ``BaseEventLoop`` subclass;
  those tests never run on the chosen loop, and the tracker below reports
  that honestly instead of hiding it.

Every loop handed out through the policy or the hooks is counted, so the
result of each test can say whether the test ran on the chosen loop.
"""

import asyncio
import threading
import types


class LoopTracker:
    """Counts loops of the chosen kind, so a test can tell if it made one."""

    def __init__(self):
        self._lock = threading.Lock()  # loops are also made in threads
        self._created = 0

    def note(self, loop):
        with self._lock:
            self._created += 1
        return loop

    def mark(self):
        return self._created

    def created_since(self, mark):
        return self._created > mark


TRACKER = LoopTracker()


class Hooks:
    """What suite recipes use to hand the chosen loop to test classes."""

    def __init__(self, spec):
        self.spec = spec
        self._subclass = _python_subclass(spec.loop_class)

    def new_loop(self):
        """A fresh loop of the chosen kind, exactly as its factory makes it."""
        return TRACKER.note(self.spec.new_loop())

    def new_attribute_friendly_loop(self):
        """A loop whose instance attributes tests may set, or None.

        Some suites build their loop by hand and then set attributes on it
        (mocks of methods, bookkeeping flags); the stock loop, a Python class,
        allows that.  A Python subclass of the chosen loop class gives the same
        freedom without changing any behaviour of the loop itself.
        """
        if self._subclass is None:
            return None
        return TRACKER.note(self._subclass())


def _python_subclass(loop_class):
    try:
        return type(loop_class.__name__, (loop_class,), {
            "__module__": __name__,
            "__doc__": f"{loop_class.__qualname__} with a __dict__.",
        })
    except TypeError:
        # The class does not allow subclassing; callers fall back.
        return None


def _tracking_policy(spec):
    base = spec.policy_class

    class ConformancePolicy(base):
        __doc__ = f"{base.__qualname__} that counts the loops it creates."

        def new_event_loop(self):
            return TRACKER.note(super().new_event_loop())

    ConformancePolicy.__qualname__ = ConformancePolicy.__name__ = (
        f"Conformance{base.__name__}")
    return ConformancePolicy


def install(spec):
    """Make `spec`'s loop the default for asyncio and its test harness."""
    policy_class = _tracking_policy(spec)
    # set_event_loop_policy(None) re-creates the default policy by looking
    # up asyncio.DefaultEventLoopPolicy; unix_events holds the same name.
    asyncio.DefaultEventLoopPolicy = policy_class
    asyncio.unix_events.DefaultEventLoopPolicy = policy_class
    asyncio.set_event_loop_policy(None)
    _check_default_loop(spec, policy_class)
    _adapt_test_utils()
    return Hooks(spec)


def _check_default_loop(spec, policy_class):
    """Fail loudly if a policy reset no longer lands on the chosen loop."""
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, policy_class):
        raise RuntimeError(f"default policy is {policy!r}, not ours")
    mark = TRACKER.mark()
    loop = asyncio.new_event_loop()
    try:
        if not isinstance(loop, spec.loop_class):
            raise RuntimeError(f"asyncio.new_event_loop() gave {loop!r}")
        if not TRACKER.created_since(mark):
            raise RuntimeError("loop creation was not counted")
    finally:
        loop.close()
    asyncio.set_event_loop_policy(None)


def _adapt_test_utils():
    """Let the shared TestCase clean up loops that lack stock internals.

    test_utils.TestCase.close_loop() reads ``loop._default_executor``, a
    private attribute of the stock loop, for every loop a test registers.
    That is harness code, not the behaviour under test, so a loop without the
    attribute gets the public equivalent: shutdown_default_executor().
    """
    from test.test_asyncio import utils as test_utils

    stock_close_loop = test_utils.TestCase.close_loop

    def close_loop(loop):
        if not hasattr(loop, "_default_executor"):
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            # The stock code then only closes the loop and waits for child
            # watcher threads; give it a view with no executor left to stop.
            loop = types.SimpleNamespace(
                _default_executor=None,
                is_closed=loop.is_closed,
                close=loop.close,
            )
        stock_close_loop(loop)

    test_utils.TestCase.close_loop = staticmethod(close_loop)
