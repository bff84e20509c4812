# The C core. Its Loop type is typed through asyncloop.Loop, which derives
# from it and from asyncio.AbstractEventLoop.
from typing import Any

Loop: Any
Handle: Any
TimerHandle: Any

def libuv_version() -> str: ...
def __getattr__(name: str) -> Any: ...
