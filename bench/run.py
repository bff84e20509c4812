"""Runs every benchmark of bench/ in turn: python bench/run.py [--quick].

Each benchmark script compares the default loop, uvloop and asyncloop in one
run and prints its own table; arguments are passed on to each of them.
"""
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
# The core loop first; the others as they exist.
SCRIPTS = ['core.py', 'net_echo.py', 'low_sock.py', 'sendfile.py', 'pipes.py',
           'proc_spawn.py', 'http.py', 'kv_client.py']


def main(args):
    status = 0
    for name in SCRIPTS:
        script = HERE / name
        if not script.exists():
            continue
        print(f'\n## {name}\n', flush=True)
        status |= subprocess.call([sys.executable, str(script), *args])
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
