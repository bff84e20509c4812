"""The event loops the conformance runner knows how to wire in.

Each entry says how to import a loop and names three things: the loop class,
a factory returning a fresh loop, and the policy class whose new_event_loop()
returns such a loop.  Everything else (policies, hooks, counting) is built
from these three in wiring.py, so adding a loop means adding one function.
"""

import dataclasses
import importlib
from typing import Callable


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    name: str
    loop_class: type
    new_loop: Callable[[], object]
    policy_class: type
    version: str


def _stock():
    import asyncio
    import platform
    # The default policy's loop on Unix is the selector loop; the conformance
    # run with it is the reference every other loop is compared with.
    return LoopSpec(
        name="asyncio",
        loop_class=asyncio.SelectorEventLoop,
        new_loop=asyncio.SelectorEventLoop,
        policy_class=asyncio.DefaultEventLoopPolicy,
        version=platform.python_version(),
    )


def _from_module(module_name, class_attr):
    """A loop shipped as a module with new_event_loop() and EventLoopPolicy."""
    module = importlib.import_module(module_name)
    return LoopSpec(
        name=module_name,
        loop_class=getattr(module, class_attr),
        new_loop=module.new_event_loop,
        policy_class=module.EventLoopPolicy,
        version=getattr(module, "__version__", "?"),
    )


LOOPS = {
    "asyncio": _stock,
    "asyncloop": lambda: _from_module("asyncloop", "Loop"),
    "uvloop": lambda: _from_module("uvloop", "Loop"),
}


def load(name):
    """Import the loop called `name`; ImportError propagates to the caller.

    A name not listed above is taken as a module that follows the same
    convention as asyncloop and uvloop (new_event_loop, Loop, EventLoopPolicy).
    """
    make = LOOPS.get(name) or (lambda: _from_module(name, "Loop"))
    return make()
