"""Child process for the Ctrl-C tests: ctrl_c.py RUNNER SCENARIO.

RUNNER picks how the main coroutine is run:
  asyncio-run          asyncio.run(main())                  (default loop)
  asyncloop-run        asyncloop.run(main())
  asyncio-run-factory  asyncio.run(main(), loop_factory=asyncloop.new_event_loop)
  runner-default       asyncio.Runner()                     (default loop)
  runner-factory       asyncio.Runner(loop_factory=asyncloop.new_event_loop)
  loop-default         asyncio.new_event_loop(), for SCENARIO run-forever
  loop-asyncloop       asyncloop.new_event_loop(), for SCENARIO run-forever

SCENARIO:
  cancel       main prints "ready" and sleeps; the first SIGINT cancels it.
  second       main swallows the first cancellation and sleeps again: the
               second SIGINT interrupts it.
  run-forever  a bare loop.run_forever() with no Runner.

The first line printed names the kind of loop that runs main; the test then
sends SIGINT after each "ready"/"cancelled" line.
"""
import asyncio
import sys

import asyncloop


def say(*args):
    print(*args, flush=True)


async def main(scenario):
    loop = asyncio.get_running_loop()
    say('loop:', 'asyncloop' if isinstance(loop, asyncloop.Loop) else 'asyncio')
    try:
        say('ready')
        await asyncio.sleep(60)
        say('slept')
    except asyncio.CancelledError:
        say('cancelled')
        if scenario == 'second':
            try:
                await asyncio.sleep(60)
            finally:
                say('second sleep ended')
        raise
    finally:
        say('finally')


def run_forever(loop):
    say('loop:', 'asyncloop' if isinstance(loop, asyncloop.Loop) else 'asyncio')
    loop.call_soon(say, 'ready')
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        say('interrupted', loop.is_running())
    say(loop.run_until_complete(asyncio.sleep(0.01, 'usable')))
    loop.close()
    say('closed')


def run(runner, scenario):
    if scenario == 'run-forever':
        factory = {'loop-default': asyncio.new_event_loop,
                   'loop-asyncloop': asyncloop.new_event_loop}[runner]
        return run_forever(factory())
    coro = main(scenario)
    if runner == 'asyncio-run':
        asyncio.run(coro)
    elif runner == 'asyncloop-run':
        asyncloop.run(coro)
    elif runner == 'asyncio-run-factory':
        asyncio.run(coro, loop_factory=asyncloop.new_event_loop)
    elif runner == 'runner-default':
        with asyncio.Runner() as r:
            r.run(coro)
    elif runner == 'runner-factory':
        with asyncio.Runner(loop_factory=asyncloop.new_event_loop) as r:
            r.run(coro)
    else:
        raise SystemExit(f'unknown runner {runner!r}')


if __name__ == '__main__':
    run(sys.argv[1], sys.argv[2])
