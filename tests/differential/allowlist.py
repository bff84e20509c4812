"""Differences between asyncloop and the default loop that are expected.

Each entry says which difference it explains (a test on the difference and
on the source of the operation that showed it) and why it is expected.
An entry with neutralize=True is about one operation: the program is run
again without that operation, so what follows from it is not counted.
Anything not explained here fails the differential test.
"""
import re
import sys


class Entry:
    def __init__(self, name, reason, match, neutralize=True, cause=None):
        self.name, self.reason = name, reason
        self.match = match
        self.neutralize = neutralize
        # Operations to take out with the one that showed the difference:
        # those that cause it (source lines matching this pattern).
        self.cause = cause and re.compile(cause)

    def ops_to_remove(self, diff, source):
        ops = [diff['op']] if 'op' in diff and self.neutralize else []
        if self.cause:
            for match in re.finditer(r'h\.a?op\((\d+), lambda: (.*)\)$',
                                     source, re.M):
                if self.cause.search(match.group(2)):
                    ops.append(int(match.group(1)))
        return ops


# Documented in the README's "Differences from asyncio". The programs are
# built so that those do not show, rather than allowed here:
# - add_reader on a closed and reused descriptor number: harness.close_sock
#   keeps the number taken until the program ends;
# - getaddrinfo of a numeric host without suspending, stream transports
#   reading until drained: such awaits take an undefined number of loop
#   iterations on either loop, and the generator cancels a task only while
#   how far it got does not depend on them;
# - a loop (and the handles it held) freed by the collector's next run: the
#   harness collects until nothing is left before it reads the warnings,
#   and compares which warnings came, not how many.
DOCUMENTED = []

_WRITELINES_EMPTY = r"\.writelines\(\[b'[^']*', b''\]\)"

# Where the reference itself is wrong on one interpreter.
REFERENCE = [
    Entry('asyncio-3.13.0-nested-run-forever',
          'on CPython 3.13.0 the default loop\'s run_forever() called while '
          'the loop runs raises RuntimeError and then unsets the running '
          'loop (get_running_loop() fails from then on in that task); '
          'asyncloop keeps it, as 3.11 and 3.12 do',
          lambda d, line, source: sys.version_info[:3] == (3, 13, 0)
          and re.search(r'h\.op\(\d+, lambda: loop\.run_forever\(\)\)',
                        source) is not None,
          neutralize=False, cause=r'^loop\.run_forever\(\)$'),
    Entry('asyncio-3.12-writelines-empty-item',
          'on CPython 3.12 and 3.13 (.0/.1 here) the default loop\'s '
          'writelines() with an empty bytes item (sent with sendmsg) leaves '
          'the transport believing data is pending: close() then never '
          'calls connection_lost(); asyncloop closes, as 3.11 does',
          lambda d, line, source: sys.version_info >= (3, 12)
          and re.search(_WRITELINES_EMPTY, source) is not None,
          neutralize=False, cause=_WRITELINES_EMPTY),
]

ENTRIES = DOCUMENTED + REFERENCE


def explain(diff, line, source):
    """The entry that explains this difference, or None."""
    for entry in ENTRIES:
        if entry.match(diff, line, source):
            return entry
    return None
