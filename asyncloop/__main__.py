"""python -m asyncloop script.py [args] | -m module [args]

Runs an unmodified asyncio program with asyncloop as its event loop, as
`python script.py` (or `python -m module`) would run it: the same
sys.argv, sys.path[0], __main__ and __file__, the same exit code, and the
same traceback, which starts in the program.
"""
import asyncio
import importlib.machinery
import os
import runpy
import signal
import sys
import types
import warnings
import zipfile

from . import EventLoopPolicy

USAGE = 'usage: python -m asyncloop script.py [args] | -m module [args]'

# Frames of this launcher and of runpy, left out of tracebacks.
_OWN_FILES = {__file__, runpy.__file__, '<frozen runpy>'}


def _install_policy():
    # asyncio.run() and asyncio.new_event_loop() consult the policy; its
    # deprecation on newer Pythons is not the program's business.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.set_event_loop_policy(EventLoopPolicy())


def _program_tb(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    return tb


def _run_script(path):
    if not os.path.exists(path):
        print(f"{sys.orig_argv[0]}: can't open file {os.path.abspath(path)!r}: "
              f"[Errno 2] No such file or directory", file=sys.stderr)
        return 2
    if os.path.isdir(path) or zipfile.is_zipfile(path):
        # An application with a __main__.py: as python, put the directory
        # or archive first on the path and run its __main__ module.
        sys.path[0] = os.path.abspath(path)
        sys.modules['__main__'] = types.ModuleType('__main__')
        runpy._run_module_as_main('__main__', alter_argv=False)
        return 0
    # As python does: the directory of the script, symbolic links resolved,
    # first on the path; sys.argv[0] as given and __file__ absolute.
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    path = os.path.abspath(path)
    module = types.ModuleType('__main__')
    module.__file__ = path
    module.__cached__ = None
    module.__loader__ = importlib.machinery.SourceFileLoader('__main__', path)
    sys.modules['__main__'] = module
    with open(path, 'rb') as f:
        code = compile(f.read(), path, 'exec')
    exec(code, module.__dict__)
    return 0


def _run_module(name):
    # The program gets a __main__ module of its own, as with `python -m`,
    # and runpy's own entry point reports a missing module as python does.
    sys.modules['__main__'] = types.ModuleType('__main__')
    runpy._run_module_as_main(name, alter_argv=True)
    return 0


def _die_of_sigint():
    """Exit as a process killed by Ctrl-C, as python does."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    return 130


def main(argv):
    if not argv or argv[0] in ('-h', '--help') or argv == ['-m']:
        print(USAGE, file=sys.stdout if argv[:1] in (['-h'], ['--help'])
              else sys.stderr)
        return 0 if argv[:1] in (['-h'], ['--help']) else 2
    _install_policy()
    sys.argv = argv[1:] if argv[0] == '-m' else list(argv)
    try:
        if argv[0] == '-m':
            return _run_module(argv[1])
        return _run_script(argv[0])
    except SystemExit:
        raise
    except BaseException as exc:
        # The hook prints the exception's own traceback.
        exc.__traceback__ = _program_tb(exc.__traceback__)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        if isinstance(exc, KeyboardInterrupt):
            return _die_of_sigint()
        return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
