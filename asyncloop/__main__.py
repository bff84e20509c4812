"""python -m asyncloop script.py [args] | -m module [args]

Runs an unmodified asyncio program with asyncloop as its event loop, as
`python script.py` would run it: same sys.argv, sys.path[0] and __main__,
same exit code, and a traceback that starts in the script.
"""
import asyncio
import os
import runpy
import sys
import warnings

from . import EventLoopPolicy

USAGE = 'usage: python -m asyncloop script.py [args] | -m module [args]'


def _install_policy():
    # asyncio.run() and asyncio.new_event_loop() consult the policy; its
    # deprecation on newer Pythons is not the script's business.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(EventLoopPolicy())


def _strip_own_frames(tb):
    """Drop the frames of this module and of runpy from the traceback."""
    own = {__file__, runpy.__file__}
    while tb is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    return tb


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    _install_policy()
    if argv[0] == '-m':
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        run = lambda: runpy.run_module(argv[1], run_name='__main__',
                                       alter_sys=True)
    else:
        if not os.path.exists(argv[0]):
            print(f"{sys.executable}: can't open file {argv[0]!r}: "
                  f"[Errno 2] No such file or directory", file=sys.stderr)
            return 2
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        run = lambda: runpy.run_path(argv[0], run_name='__main__')
    try:
        run()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        sys.excepthook(type(exc), exc, _strip_own_frames(exc.__traceback__))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
