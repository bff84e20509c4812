"""Build of the C extension asyncloop._loop against libuv.

libuv comes from the system (Debian's libuv1-dev), found with pkg-config.
When its static library is installed and position-independent it is linked
in, so the built module needs no libuv at run time; otherwise the module
links to the shared libuv (and `scripts/wheel.sh` bundles that library into
the wheel).

What the build needs (a C compiler, pkg-config, libuv >= 1.44 with its
headers) is checked when the extension is built, not before: the sdist and
the metadata can be made without any of it, and a missing piece is reported
by name instead of as a traceback. The metadata is in pyproject.toml.
"""
import glob
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.errors import BaseError as _SetupError
except ImportError:     # setuptools < 59
    from distutils.errors import DistutilsError as _SetupError

MIN_LIBUV = (1, 44)
APT_HINT = 'on Debian/Ubuntu: apt-get install -y'


class BuildRequirementError(_SetupError):
    """A tool or library the build needs is missing. setup() prints it as
    "error: <message>" and exits, without a traceback."""


def compiler_command():
    """The C compiler the build uses (CC, else the one Python was built
    with) as an argument list; an error naming it when it is not there."""
    cc = os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc'
    cmd = shlex.split(cc)
    if not cmd or shutil.which(cmd[0]) is None:
        raise BuildRequirementError(
            f'no C compiler: {cmd[0] if cmd else cc!r} is not on PATH. '
            f'asyncloop is a C extension; install one ({APT_HINT} gcc) '
            'or set CC to a compiler')
    return cmd


def check_pkg_config():
    """pkg-config is how the build finds libuv."""
    if shutil.which('pkg-config') is None:
        raise BuildRequirementError(
            'pkg-config is not on PATH: the build needs it to find libuv '
            f'({APT_HINT} pkg-config)')


def pkg_config(*args):
    """pkg-config's answer about libuv, or None when it fails."""
    try:
        out = subprocess.run(['pkg-config', *args, 'libuv'], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.strip()


def parse_version(text):
    return tuple(int(part) for part in text.split('.')[:3] if part.isdigit())


def check_libuv():
    """libuv is known to pkg-config, recent enough, and has its headers.
    Returns its version string."""
    check_pkg_config()
    if pkg_config('--exists') is None:
        raise BuildRequirementError(
            'libuv was not found by pkg-config (no libuv.pc): install '
            f"libuv's development files ({APT_HINT} libuv1-dev), or point "
            'PKG_CONFIG_PATH at the directory holding libuv.pc')
    version = pkg_config('--modversion') or '?'
    wanted = '.'.join(map(str, MIN_LIBUV))
    if parse_version(version) < MIN_LIBUV:
        raise BuildRequirementError(
            f'libuv {version} was found, asyncloop needs libuv >= {wanted}: '
            f'install a newer libuv ({APT_HINT} libuv1-dev, from Debian 12 '
            'or Ubuntu 22.10 on)')
    includedir = pkg_config('--variable=includedir') or ''
    if includedir and not os.path.exists(os.path.join(includedir, 'uv.h')):
        raise BuildRequirementError(
            f"libuv's header uv.h is not in {includedir}, where libuv.pc "
            f'says it is: reinstall libuv1-dev ({APT_HINT} --reinstall '
            'libuv1-dev)')
    return version


def links_into_shared_object(compiler, archive):
    """Whether the static library was built position-independent: Debian's
    libuv_a.a is not, and then cannot go into an extension module."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*compiler, '-shared', '-o', os.path.join(tmp, 't.so'),
               '-Wl,--whole-archive', archive, '-Wl,--no-whole-archive',
               '-lpthread', '-ldl']
        return subprocess.run(cmd, capture_output=True).returncode == 0


def libuv_flags():
    """Checks what the build needs; returns
    (include_dirs, libraries, extra_objects, library_dirs)."""
    compiler = compiler_command()
    check_libuv()
    includes = [f[2:] for f in shlex.split(pkg_config('--cflags-only-I'))]
    libdir = pkg_config('--variable=libdir')
    static = os.path.join(libdir, 'libuv_a.a')
    if (os.environ.get('ASYNCLOOP_SHARED_LIBUV') != '1'
            and os.path.exists(static)
            and links_into_shared_object(compiler, static)):
        return includes, ['pthread', 'dl', 'rt'], [static], []
    return includes, ['uv'], [], [libdir]


class BuildExtWithLibuv(build_ext):
    """build_ext that finds libuv first, so that only building the
    extension needs it."""

    def run(self):
        includes, libraries, objects, libdirs = libuv_flags()
        for ext in self.extensions:
            ext.include_dirs += includes
            ext.libraries += libraries
            ext.extra_objects += objects
            ext.library_dirs += libdirs
        super().run()


def compile_and_link_args():
    extra_compile = ['-Wall', '-Wextra', '-std=c11', '-D_GNU_SOURCE']
    extra_link = []
    if os.environ.get('ASYNCLOOP_SANITIZE'):
        sanitize = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer',
                    '-O1', '-g']
        extra_compile += sanitize
        extra_link += sanitize
    elif os.environ.get('ASYNCLOOP_DEBUG'):
        extra_compile += ['-O0', '-g']
    return extra_compile, extra_link


def license_metadata():
    """MIT, with LICENSE in the wheel's dist-info (setuptools' default
    license files). setuptools >= 77 writes it as the SPDX expression; the
    older ones, still used by in-place builds, only know the free text."""
    major = int(setuptools.__version__.split('.')[0])
    if major >= 77:
        return {'license_expression': 'MIT'}
    return {'license': 'MIT'}


def main():
    extra_compile, extra_link = compile_and_link_args()
    setup(
        ext_modules=[
            Extension(
                'asyncloop._loop',
                sources=sorted(glob.glob('src/*.c')),
                depends=sorted(glob.glob('src/*.h')),
                extra_compile_args=extra_compile,
                extra_link_args=extra_link,
            )
        ],
        cmdclass={'build_ext': BuildExtWithLibuv},
        **license_metadata(),
    )


# Run by pip, build and `python setup.py ...`; importing this file (as
# tests/test_packaging.py does) only defines the checks.
if __name__ == '__main__':
    main()
