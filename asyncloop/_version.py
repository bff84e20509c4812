"""The version of asyncloop, kept here only: the build reads it from this
file (pyproject.toml's dynamic version) and asyncloop.__version__ is this."""
__version__ = '0.1.0'
