"""Build of the C extension asyncloop._loop against libuv.

libuv comes from the system (Debian's libuv1-dev). When its static library
is installed and position-independent it is linked in, so the built module
needs no libuv at run time; otherwise the module links to the shared libuv
(and `scripts/wheel.sh` bundles that library into the wheel).
"""
import glob
import os
import shlex
import subprocess
import tempfile

from setuptools import Extension, setup


def pkg_config(*args):
    try:
        out = subprocess.run(['pkg-config', *args, 'libuv'], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.strip()


def links_into_shared_object(archive):
    """Whether the static library was built position-independent: Debian's
    libuv_a.a is not, and then cannot go into an extension module."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ['cc', '-shared', '-o', os.path.join(tmp, 't.so'),
               '-Wl,--whole-archive', archive, '-Wl,--no-whole-archive',
               '-lpthread', '-ldl']
        return subprocess.run(cmd, capture_output=True).returncode == 0


def libuv_flags():
    """(include_dirs, libraries, extra_objects, library_dirs)."""
    if pkg_config('--exists') is None:
        raise SystemExit('libuv was not found: install libuv1-dev '
                         '(apt-get install -y libuv1-dev)')
    includes = [f[2:] for f in shlex.split(pkg_config('--cflags-only-I'))]
    libdir = pkg_config('--variable=libdir')
    static = os.path.join(libdir, 'libuv_a.a')
    if (os.environ.get('ASYNCLOOP_SHARED_LIBUV') != '1'
            and os.path.exists(static) and links_into_shared_object(static)):
        return includes, ['pthread', 'dl', 'rt'], [static], []
    return includes, ['uv'], [], [libdir]


includes, libraries, objects, libdirs = libuv_flags()
extra_compile = ['-Wall', '-Wextra', '-std=c11', '-D_GNU_SOURCE']
extra_link = []
if os.environ.get('ASYNCLOOP_SANITIZE'):
    sanitize = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer',
                '-O1', '-g']
    extra_compile += sanitize
    extra_link += sanitize
elif os.environ.get('ASYNCLOOP_DEBUG'):
    extra_compile += ['-O0', '-g']

setup(
    ext_modules=[
        Extension(
            'asyncloop._loop',
            sources=sorted(glob.glob('src/*.c')),
            depends=['src/asyncloop.h'],
            include_dirs=includes,
            libraries=libraries,
            library_dirs=libdirs,
            extra_objects=objects,
            extra_compile_args=extra_compile,
            extra_link_args=extra_link,
        )
    ],
)
