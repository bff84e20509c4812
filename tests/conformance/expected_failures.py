"""Tests of test.test_asyncio that only the stock loop can pass.

Only tests that read private attributes or internals of the stock loop
belong here (``loop._ready``, ``loop._selector``, mocks of BaseEventLoop
methods, ...): they check how the stock loop is built, not how an asyncio
loop behaves.  A test that fails for any other reason is a conformance bug
of the loop and must not be listed.

Keys are test ids without the ``test.test_asyncio.`` prefix; shell-style
wildcards (fnmatch) cover the C and Python variants of a test class.
Values are a one-line reason.  ALL applies on every supported Python;
BY_VERSION adds entries for one (major, minor) version only.

The list does not apply to the stock loop itself (``--loop asyncio``): there
these internals exist, and every test must simply pass.  A listed test that
crashes or hangs is still reported as a crash.
"""

import fnmatch

REFERENCE_LOOP = "asyncio"

ALL = {
    "test_events.EventLoopTests.test_timeout_rounding":
        "wraps loop._run_once to count iterations, reads loop._selector",
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests"
    ".test_sock_sendfile_not_available":
        "patches asyncio.unix_events.os, the stock loop's module",
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests"
    ".test_sock_sendfile_[bceo]*":
        "calls and patches the stock loop's _sock_sendfile_native_impl",
    "test_subprocess.GenericWatcherTests"
    ".test_create_subprocess_fails_with_inactive_watcher":
        "mocks the policy's child watcher, which asyncloop does not use "
        "(children are reaped through pidfds)",
}

# Not private attributes: behaviour of asyncloop that differs from the
# stock loop, each also written down in the README's "Differences from
# asyncio". Listed so that they are tracked, not hidden: a listed test that
# passes is reported as such.
KNOWN_DIFFERENCES = {
    "test_events.EventLoopTests.test_create_ssl_unix_connection":
        "reads sockname after a peer that answers at once: asyncloop's "
        "transport reads until the socket is drained in one iteration, so "
        "the TLS connection may already be closed (the stock loop reads "
        "once per iteration); passes or fails by timing",
}

BY_VERSION = {
    (3, 11): {
    },
    (3, 12): {
    },
    (3, 13): {
    },
}


def for_run(loop_name, version):
    """The {pattern: reason} entries that apply to one run."""
    if loop_name == REFERENCE_LOOP:
        return {}
    entries = dict(ALL)
    entries.update(KNOWN_DIFFERENCES)
    entries.update(BY_VERSION.get(tuple(version[:2]), {}))
    return entries


def reason_for(test_id, entries):
    """The reason `test_id` is expected to fail, or None."""
    for pattern, reason in entries.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None
