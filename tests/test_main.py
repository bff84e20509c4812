"""`python -m asyncloop script.py [args]` and `python -m asyncloop -m module`.

The command must run an unmodified asyncio program as `python script.py`
(or `python -m module`) would, only on asyncloop: the same sys.argv,
__name__, __file__, sys.path, exit code and error output. Each test runs
the program both ways in child processes and compares.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).parent.parent
TIMEOUT = 60

# The program under test. It prints what the comparison is about, one fact
# per line; the line naming the loop is the one expected to differ.
PROGRAM = textwrap.dedent('''\
    import asyncio
    import sys

    import sibling

    def report(*args):
        print(*args, flush=True)

    report('argv', sys.argv)
    report('name', __name__)
    report('file', __file__)
    report('path', sys.path)
    report('sibling', sibling.VALUE)
    report('main module', sys.modules['__main__'].__dict__ is globals())

    async def main():
        loop = asyncio.get_running_loop()
        report('LOOP', type(loop).__module__, type(loop).__name__)
        await asyncio.sleep(0)
        return 'main done'

    report(asyncio.run(main()))

    mode = sys.argv[1] if len(sys.argv) > 1 else ''
    if mode == 'exit3':
        sys.exit(3)
    if mode == 'exit-message':
        sys.exit('leaving with a message')
    if mode == 'raise':
        def inner():
            raise ValueError('boom')
        def outer():
            inner()
        outer()
    if mode == 'raise-chained':
        try:
            {}['missing']
        except KeyError as exc:
            raise RuntimeError('while handling') from exc
    if mode == 'raise-in-loop':
        async def failing():
            await asyncio.sleep(0)
            raise LookupError('in the loop')
        asyncio.run(failing())
    if mode == 'keyboard-interrupt':
        raise KeyboardInterrupt
    if mode == 'new-loop':
        loop = asyncio.new_event_loop()
        report('NEW LOOP', type(loop).__name__)
        loop.close()
    report('end')
''')


@pytest.fixture
def program(tmp_path):
    """The program and a sibling module in their own directory; returns the
    program's absolute path. Children run from another directory."""
    folder = tmp_path / 'prog'
    folder.mkdir()
    (folder / 'script.py').write_text(PROGRAM)
    (folder / 'sibling.py').write_text("VALUE = 'imported from sibling'\n")
    (tmp_path / 'elsewhere').mkdir()
    return folder / 'script.py'


def run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop('PYTHONASYNCIODEBUG', None)
    proc = subprocess.run([sys.executable, *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr


def both(script_args, cwd):
    """(plain python, python -m asyncloop) results for the same arguments."""
    return run(script_args, cwd), run(['-m', 'asyncloop', *script_args], cwd)


def facts(stdout):
    """stdout without the lines that name the loop."""
    return [line for line in stdout.splitlines()
            if not line.startswith(('LOOP ', 'NEW LOOP '))]


def loop_line(stdout, prefix='LOOP '):
    return [line for line in stdout.splitlines() if line.startswith(prefix)]


def test_same_argv_name_path_and_loop(program):
    """argv is [script, args...], __name__ is '__main__', the script's own
    directory is sys.path[0] (a sibling module imports), sys.path is the
    same as python's; only the loop differs: asyncloop's inside
    asyncio.run()."""
    cwd = program.parent.parent / 'elsewhere'
    plain, ours = both([str(program), 'arg1', '--flag'], cwd)
    assert plain[0] == 0, plain[2]
    assert ours[0] == 0, ours[2]
    assert facts(ours[1]) == facts(plain[1])
    assert f"argv {[str(program), 'arg1', '--flag']}" in ours[1]
    assert 'name __main__' in ours[1]
    assert 'sibling imported from sibling' in ours[1]
    assert 'main module True' in ours[1]
    assert loop_line(ours[1]) == ['LOOP asyncloop.loop Loop']
    assert loop_line(plain[1]) != loop_line(ours[1])
    assert ours[2] == plain[2] == ''


def test_new_event_loop_in_script_is_asyncloop(program):
    """asyncio.new_event_loop() in the program makes an asyncloop loop."""
    cwd = program.parent
    code, out, err = run(['-m', 'asyncloop', str(program), 'new-loop'], cwd)
    assert code == 0, err
    assert loop_line(out, 'NEW LOOP ') == ['NEW LOOP Loop']


def test_relative_script_path(program):
    """A script given by a relative path: argv[0] as given, __file__ and
    sys.path[0] as python sets them (absolute)."""
    cwd = program.parent.parent
    rel = os.path.join('prog', 'script.py')
    plain, ours = both([rel, 'x'], cwd)
    assert plain[0] == 0 and ours[0] == 0, (plain[2], ours[2])
    assert facts(ours[1]) == facts(plain[1])


def test_script_reached_through_symlink(program, tmp_path):
    """A script run through a symlink: python puts the directory of the
    real file first on sys.path (so its siblings import); so must we."""
    links = tmp_path / 'links'
    links.mkdir()
    link = links / 'linked.py'
    link.symlink_to(program)
    plain, ours = both([str(link)], tmp_path / 'elsewhere')
    assert plain[0] == 0, plain[2]
    assert ours[0] == 0, ours[2]
    assert facts(ours[1]) == facts(plain[1])


def test_exit_code(program):
    """sys.exit(3) in the program: exit code 3, nothing on stderr."""
    plain, ours = both([str(program), 'exit3'], program.parent)
    assert plain[0] == 3
    assert ours[0] == 3
    assert ours[2] == plain[2] == ''


def test_exit_with_message(program):
    """sys.exit('message'): the message on stderr and exit code 1."""
    plain, ours = both([str(program), 'exit-message'], program.parent)
    assert plain[:1] == ours[:1] == (1,)
    assert ours[2] == plain[2] == 'leaving with a message\n'


@pytest.mark.parametrize('mode', ['raise', 'raise-chained'])
def test_uncaught_exception_traceback(program, mode):
    """An uncaught exception: exit code 1 and the very traceback python
    prints, whose frames start in the script (no runpy or asyncloop
    frames)."""
    plain, ours = both([str(program), mode], program.parent)
    assert plain[0] == 1
    assert ours[0] == 1
    assert facts(ours[1]) == facts(plain[1])
    assert 'runpy' not in ours[2]
    assert 'asyncloop' not in ours[2]
    assert ours[2] == plain[2]


def test_uncaught_exception_from_the_loop(program):
    """An exception out of asyncio.run() in the program: exit code 1, the
    traceback's first frame is the script's module level, and the error
    line is the same as python's."""
    plain, ours = both([str(program), 'raise-in-loop'], program.parent)
    assert plain[0] == ours[0] == 1
    lines = ours[2].splitlines()
    plain_lines = plain[2].splitlines()
    assert lines[0] == plain_lines[0] == 'Traceback (most recent call last):'
    assert lines[1] == plain_lines[1]
    assert lines[1].startswith(f'  File "{program}", line ')
    assert lines[-1] == plain_lines[-1] == 'LookupError: in the loop'


def test_keyboard_interrupt_in_script(program):
    """KeyboardInterrupt escaping the program: the process dies of SIGINT
    as python's does, with the same traceback (from the script only)."""
    plain, ours = both([str(program), 'keyboard-interrupt'], program.parent)
    assert plain[0] == -2
    assert ours[0] == plain[0]
    assert ours[2].splitlines()[-1] == 'KeyboardInterrupt'
    assert ours[2] == plain[2]


def test_module_form(program):
    """`python -m asyncloop -m module args` runs like `python -m module
    args`: argv[0] is the module's file, __name__ '__main__', the same
    sys.path (the current directory first, once), asyncloop's loop."""
    cwd = program.parent
    (cwd / 'mymod.py').write_text(PROGRAM.replace('import sibling\n',
                                                  'import sibling  # m\n'))
    plain = run(['-m', 'mymod', 'a'], cwd)
    ours = run(['-m', 'asyncloop', '-m', 'mymod', 'a'], cwd)
    assert plain[0] == 0, plain[2]
    assert ours[0] == 0, ours[2]
    assert f"argv {[str(cwd / 'mymod.py'), 'a']}" in ours[1]
    assert loop_line(ours[1]) == ['LOOP asyncloop.loop Loop']
    assert facts(ours[1]) == facts(plain[1])


def test_module_form_package(tmp_path):
    """-m with a package runs its __main__ submodule."""
    pkg = tmp_path / 'mypkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / '__main__.py').write_text(textwrap.dedent('''\
        import asyncio, sys
        async def main():
            return type(asyncio.get_running_loop()).__name__
        print(__name__, __spec__.name, asyncio.run(main()), sys.argv[1:])
    '''))
    code, out, err = run(['-m', 'asyncloop', '-m', 'mypkg', 'x'], tmp_path)
    assert code == 0, err
    assert out == "__main__ mypkg.__main__ Loop ['x']\n"


def test_module_form_exit_code(program):
    """sys.exit(3) in a module run with -m: exit code 3."""
    code, out, err = run(['-m', 'asyncloop', '-m', 'script', 'exit3'],
                         program.parent)
    assert code == 3, err


def test_missing_script(tmp_path):
    """A script that does not exist: exit code 2 and python's message."""
    plain, ours = both(['no_such_script.py'], tmp_path)
    assert plain[0] == 2
    assert ours[0] == 2
    assert "can't open file" in ours[2]
    assert 'No such file or directory' in ours[2]
    assert ours[2] == plain[2]


def test_missing_module(tmp_path):
    """-m with a module that does not exist: exit code 1 and python's
    one-line message, no traceback."""
    plain = run(['-m', 'no_such_module_here'], tmp_path)
    ours = run(['-m', 'asyncloop', '-m', 'no_such_module_here'], tmp_path)
    assert plain[0] == 1
    assert ours[0] == 1
    assert 'No module named no_such_module_here' in ours[2]
    assert 'Traceback' not in ours[2]
    assert ours[2] == plain[2]


def test_no_arguments(tmp_path):
    """No script: a usage message on stderr and exit code 2."""
    code, out, err = run(['-m', 'asyncloop'], tmp_path)
    assert code == 2
    assert 'usage' in err.lower()


def test_help(tmp_path):
    """-h prints the usage on stdout and exits 0."""
    code, out, err = run(['-m', 'asyncloop', '-h'], tmp_path)
    assert code == 0
    assert 'usage' in out.lower()


def test_dash_m_without_module(tmp_path):
    """-m without a module name: usage and exit code 2."""
    code, out, err = run(['-m', 'asyncloop', '-m'], tmp_path)
    assert code == 2
    assert 'usage' in err.lower()


def test_script_arguments_that_look_like_options(program):
    """Arguments after the script belong to the script, even -h or -m."""
    plain, ours = both([str(program), '-h', '-m', 'x'], program.parent)
    assert ours[0] == plain[0] == 0, ours[2]
    assert facts(ours[1]) == facts(plain[1])


def _package_dir_program(folder):
    folder.mkdir()
    (folder / '__main__.py').write_text(textwrap.dedent('''\
        import asyncio, sys
        import helper
        async def main():
            return type(asyncio.get_running_loop()).__name__ == 'Loop'
        print('argv', sys.argv)
        print('path', sys.path)
        print('file', __file__)
        print('name', __name__, helper.VALUE)
        print('LOOP', asyncio.run(main()))
    '''))
    (folder / 'helper.py').write_text("VALUE = 'helper ok'\n")


def test_directory_with_main(tmp_path):
    """A directory holding __main__.py runs as with `python dir`: the
    directory itself (absolute) first on sys.path, nothing else added."""
    _package_dir_program(tmp_path / 'appdir')
    for arg in ('appdir', str(tmp_path / 'appdir')):
        plain, ours = both([arg, 'x'], tmp_path)
        assert plain[0] == 0, plain[2]
        assert ours[0] == 0, ours[2]
        assert facts(ours[1]) == facts(plain[1])
        assert loop_line(ours[1]) == ['LOOP True']


def test_zipapp(tmp_path):
    """A zip application (what zipapp builds) runs as with `python app.pyz`,
    on asyncloop."""
    import zipfile
    _package_dir_program(tmp_path / 'src')
    archive = tmp_path / 'app.pyz'
    with zipfile.ZipFile(archive, 'w') as zf:
        for name in ('__main__.py', 'helper.py'):
            zf.write(tmp_path / 'src' / name, name)
    plain, ours = both([str(archive), 'x'], tmp_path)
    assert plain[0] == 0, plain[2]
    assert ours[0] == 0, ours[2]
    assert facts(ours[1]) == facts(plain[1])
    assert loop_line(ours[1]) == ['LOOP True']


def test_syntax_error_in_script(tmp_path):
    """A script that does not compile: python's SyntaxError report, exit 1."""
    script = tmp_path / 'broken.py'
    script.write_text('x = (\n')
    plain, ours = both([str(script)], tmp_path)
    assert plain[0] == ours[0] == 1
    assert ours[2] == plain[2]
    assert 'SyntaxError' in ours[2]


def test_custom_excepthook(tmp_path):
    """A sys.excepthook set by the script reports its uncaught exception."""
    script = tmp_path / 'hook.py'
    script.write_text(textwrap.dedent('''\
        import sys
        def hook(kind, value, tb):
            print('hooked', kind.__name__, value, tb.tb_frame.f_code.co_name)
        sys.excepthook = hook
        raise OSError('via hook')
    '''))
    plain, ours = both([str(script)], tmp_path)
    assert plain[0] == ours[0] == 1
    assert ours[1] == plain[1] == 'hooked OSError via hook <module>\n'


def test_main_module_attributes(program):
    """The program's __main__ module has python's attributes: __spec__ and
    __package__ None, __builtins__, a docstring of its own, a loader."""
    script = program.parent / 'attrs.py'
    script.write_text(textwrap.dedent('''\
        """the docstring"""
        import sys
        main = sys.modules['__main__']
        print(__spec__, __package__, __doc__, '__builtins__' in globals())
        print(main.__name__, type(__loader__).__name__, __loader__.name)
        print(__cached__ if '__cached__' in globals() else 'no __cached__')
    '''))
    plain, ours = both([str(script)], program.parent)
    assert plain[0] == ours[0] == 0, ours[2]
    assert ours[1] == plain[1]


def test_stdin_is_the_programs(program):
    """The program reads the same stdin as under python."""
    script = program.parent / 'echo.py'
    script.write_text('import sys\nprint(sys.stdin.read().upper())\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, '-m', 'asyncloop', str(script)],
                         input='hello', capture_output=True, text=True,
                         env=env, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'HELLO\n'


def test_objects_of_main_pickle(program):
    """Classes and functions defined in the program pickle and unpickle by
    reference to __main__, as under python."""
    script = program.parent / 'pickler.py'
    script.write_text(textwrap.dedent('''\
        import pickle
        class Point:
            def __init__(self, x):
                self.x = x
        def double(v):
            return 2 * v
        p = pickle.loads(pickle.dumps(Point(21)))
        f = pickle.loads(pickle.dumps(double))
        print(type(p).__module__, type(p) is Point, f is double, f(p.x))
    '''))
    plain, ours = both([str(script)], program.parent)
    assert plain[0] == ours[0] == 0, ours[2]
    assert ours[1] == plain[1] == '__main__ True True 42\n'
