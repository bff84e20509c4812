"""Seeded random programs of event loop calls, for the differential test.

generate(seed) gives the same Program for the same seed on every run and
interpreter. A program is Python source (readable as a reproduction) of
three functions run by harness.py: sync_phase() before the loop runs,
main() as the loop's task and close_phase() after it.

What makes a program's observations independent of timing:
- near timers have distinct deadlines, SLOT (2 ms) apart, all relative to
  one base time read before the program, so their order is their deadlines';
- only far timers (an hour away) are cancelled once the loop runs, and a
  call_soon handle only before the next await;
- a task only awaits futures that main resolves, and main awaits a task
  only once all of those are resolved; a task is cancelled only while how
  far it got is known (no await but sleep(0) in main since it was made);
- every network step waits for its outcome (bytes arrived, connection
  lost) before the next one, and closes or aborts only when nothing is in
  flight, so which side sees what never depends on the scheduler;
- reader and writer callbacks remove themselves on their first call.
"""
import random

FIRST_SLOT = 10  # the first near deadline: 20 ms after the base time
SLOTS = 40

# Values that are not callables, or are callables of the wrong kind.
BAD_CALLBACKS = ['123', 'None', "'text'", 'h.coro', 'h.coro()']
DATA = [b'a', b'abc', b'x' * 100, b'y' * 5000, b'z' * 200000]


class Program:
    def __init__(self, seed):
        self.seed = seed
        self.r = random.Random(seed)
        self.n = 0
        self.lines = {'sync': [], 'main': [], 'close': []}
        self.phase = 'sync'
        self.debug = self.r.random() < 0.15
        # A NaN deadline breaks the order of the default loop's heap: it
        # is only given just before the loop closes.
        self.nan = self.r.random() < 0.1
        self.free_slots = list(range(FIRST_SLOT, FIRST_SLOT + SLOTS))
        self.r.shuffle(self.free_slots)
        self.max_slot = 0
        self.negatives = [1, 2, 3, 4, 5]
        self.zero_used = False
        self.soon = []          # call_soon handles cancellable now
        self.far = []           # far timers
        self.futures = {}       # var -> resolved?
        self.tasks = {}         # var -> futures its plan awaits
        # Tasks whose progress is known: created since the last await that
        # takes an undefined number of loop iterations (anything but
        # sleep(0)); only these are cancelled.
        self.fresh = []
        self.pairs = []
        self.stops = 0

    # Emitting ---------------------------------------------------------

    def var(self):
        self.n += 1
        return self.n

    def emit(self, line):
        self.lines[self.phase].append(line)

    def op(self, expr, keep=True):
        n = self.var()
        prefix = f'V[{n}] = ' if keep else ''
        self.emit(f'{prefix}h.op({n}, lambda: {expr})')
        return n

    def aop(self, expr):
        n = self.var()
        self.emit(f'V[{n}] = await h.aop({n}, lambda: {expr})')
        self.soon = []
        if expr not in ('asyncio.sleep(0)', 'asyncio.sleep(-1)',
                        "asyncio.sleep(0, result='r')"):
            self.fresh = []
        return n

    def pick(self, items):
        return self.r.choice(items)

    # Scheduling -------------------------------------------------------

    def g_soon(self):
        arg = self.pick(['1', "'x'", 'None', "b'b'"])
        n = self.op(f"loop.call_soon(h.cb, 's{self.n + 1}', {arg})")
        self.soon.append(n)

    def g_soon_bad(self):
        method = self.pick(['call_soon', 'call_later', 'call_at'])
        when = {'call_soon': '', 'call_later': '3600, ',
                'call_at': 'h.t0 + 3600, '}[method]
        if self.r.random() < 0.25:
            self.op(f"loop.{method}({when}h.cb, 'x', context='ctx')")
        else:
            self.op(f'loop.{method}({when}{self.pick(BAD_CALLBACKS)})')

    def g_soon_raise(self):
        exc = self.pick(['ValueError'] * 4 + ['SystemExit',
                                              'KeyboardInterrupt'])
        self.op(f"loop.call_soon(h.raiser, '{exc}')")

    def g_timer(self):
        if self.phase != 'sync' or not self.free_slots:
            return self.g_far()
        cb = 'h.tcb'
        kind = self.r.random()
        if kind < 0.1 and self.negatives:
            k = self.negatives.pop(self.r.randrange(len(self.negatives)))
            self.op(f"loop.call_later(-{k}, {cb}, 'n{k}')")
            return
        if kind < 0.15 and not self.zero_used:
            self.zero_used = True
            # Its deadline is the time of the call: unordered against the
            # near timers, whose lead a slow machine can eat up.
            self.op("loop.call_later(0, h.ucb, 'z')")
            return
        slot = self.free_slots.pop()
        self.max_slot = max(self.max_slot, slot)
        if kind < 0.55:
            n = self.op(f"loop.call_at(h.at({slot}), {cb}, 't{slot}')")
        else:
            n = self.op(f"loop.call_later(h.delay({slot}), {cb}, 't{slot}')")
        self.soon.append(n)  # cancellable while the loop has not run

    def g_far(self):
        method = self.pick(['call_later(3600', 'call_at(h.t0 + 3600'])
        self.far.append(self.op(f"loop.{method}, h.tcb, 'far')"))

    def g_timer_bad(self):
        whens = ["None", "'1'", "float('inf')", "-float('inf')"]
        when = self.pick(whens)
        method = self.pick(['call_later', 'call_at'])
        if method == 'call_at' and when == "'1'":
            when = 'None'  # the default loop takes any object, fails later
        self.op(f"loop.{method}({when}, h.ucb, 'bad')")

    def g_cancel(self):
        handles = self.soon + self.far
        if not handles:
            return self.g_far()
        k = self.pick(handles)
        self.op(f'V[{k}].cancel()')
        if self.r.random() < 0.3:
            self.op(f'V[{k}].cancel()')
        self.op(f'V[{k}].cancelled()')

    def g_handle_query(self):
        handles = self.soon + self.far
        if not handles:
            return self.g_soon()
        k = self.pick(handles)
        self.op(self.pick([
            f'isinstance(V[{k}], asyncio.Handle)',
            f'isinstance(V[{k}], asyncio.TimerHandle)',
            f'V[{k}].cancelled()',
            f"V[{k}].when() > h.t0 if hasattr(V[{k}], 'when') else None",
        ]))

    def g_threadsafe(self):
        if self.r.random() < 0.5:
            self.op(f"loop.call_soon_threadsafe(h.ucb, 'ts{self.n + 1}')")
        else:
            self.op(f"h.in_thread(loop.call_soon_threadsafe, h.ucb, "
                    f"'th{self.n + 1}')")

    # Futures and tasks ------------------------------------------------

    def g_future(self):
        n = self.op(self.pick(['loop.create_future()',
                               'asyncio.Future(loop=loop)']))
        self.futures[n] = False

    def a_future(self):
        if not self.futures or self.r.random() < 0.2:
            self.g_future()
        return self.pick(sorted(self.futures))

    def g_future_cb(self):
        f = self.a_future()
        roll = self.r.random()
        if roll < 0.1:
            self.op(f'V[{f}].add_done_callback({self.pick(["h.coro", "1"])})')
            return
        n = self.var()
        self.emit(f"V[{n}] = h.fcb('f{n}')")
        self.op(f'V[{f}].add_done_callback(V[{n}])')
        if roll < 0.3:
            self.op(f'V[{f}].remove_done_callback(V[{n}])')

    def g_future_set(self):
        f = self.a_future()
        self.op(self.pick([
            f'V[{f}].set_result({self.n})',
            f"V[{f}].set_exception(ValueError('v'))",
            f'V[{f}].set_exception(ValueError)',
            f'V[{f}].set_exception(StopIteration())',
            f'V[{f}].cancel()',
            f"V[{f}].cancel('why')",
        ]))
        self.futures[f] = True

    def g_future_query(self):
        f = self.a_future()
        self.op(self.pick([f'V[{f}].result()', f'V[{f}].exception()',
                           f'V[{f}].done()', f'V[{f}].cancelled()',
                           f'V[{f}].get_loop() is loop']))

    def plan(self):
        steps, waits = [], []
        for _ in range(self.r.randrange(0, 4)):
            kind = self.pick(['sleep0', 'sleep0', 'fut', 'swallow'])
            if kind == 'fut' and self.futures:
                f = self.pick(sorted(self.futures))
                waits.append(f)
                steps.append(f"('fut', {f})")
            elif kind == 'swallow':
                steps.append("('swallow',)")
            else:
                steps.append("('sleep0',)")
        end = self.r.random()
        if end < 0.2:
            steps.append("('raise', 'ValueError')")
        elif end < 0.5:
            steps.append(f"('return', {self.n})")
        return '[' + ', '.join(steps) + ']', waits

    def g_task(self):
        if self.r.random() < 0.1:
            self.op(f'loop.create_task({self.pick(["1", "h.coro", "V.get(0)"])})')
            return
        plan, waits = self.plan()
        n = self.var()
        self.emit(f"V[{n}] = h.op({n}, lambda: loop.create_task("
                  f"h.worker('k{n}', {plan}, V)))")
        self.tasks[n] = waits
        self.fresh.append(n)

    def g_task_cancel(self):
        if not self.fresh:
            return self.g_task()
        t = self.pick(self.fresh)
        msg = self.pick(['', "'stop'"])
        self.op(f'V[{t}].cancel({msg})')
        self.op(self.pick([f'V[{t}].cancelled()', f'V[{t}].done()',
                           f'V[{t}].cancelling()']))

    def resolve_for(self, tasks):
        """Resolves, now, every future the tasks await."""
        for t in tasks:
            for f in self.tasks[t]:
                if not self.futures.get(f):
                    self.op(f'V[{f}].set_result({f})')
                    self.futures[f] = True

    def a_await_task(self):
        if not self.tasks:
            return self.g_task()
        tasks = self.r.sample(sorted(self.tasks),
                              min(len(self.tasks), self.r.randrange(1, 4)))
        self.resolve_for(tasks)
        names = ', '.join(f'V[{t}]' for t in tasks)
        how = self.r.random()
        if how < 0.4:
            self.aop(f'V[{tasks[0]}]')
        elif how < 0.7:
            flag = self.pick(['True', 'False'])
            self.aop(f'asyncio.gather({names}, return_exceptions={flag})')
        elif how < 0.85:
            self.aop(f'asyncio.shield(V[{tasks[0]}])')
        else:
            self.aop(f'asyncio.wait_for(V[{tasks[0]}], 30)')

    def a_await_future(self):
        done = [f for f, resolved in self.futures.items() if resolved]
        if not done:
            return self.g_future_set()
        self.aop(f'V[{self.pick(done)}]')

    def a_misc(self):
        self.aop(self.pick([
            'asyncio.sleep(0)', 'asyncio.sleep(0)', 'asyncio.sleep(-1)',
            "asyncio.sleep(0, result='r')", 'h.timeout0()',
            'loop.run_in_executor(None, pow, 2, 5)',
            'loop.run_in_executor(None, 123)',
            "loop.getaddrinfo('127.0.0.1', 80, type=socket.SOCK_STREAM)",
        ]))

    # The loop itself --------------------------------------------------

    def g_loop_query(self):
        self.op(self.pick([
            'loop.is_running()', 'loop.is_closed()', 'loop.get_debug()',
            'loop.time() <= loop.time()', 'isinstance(loop.time(), float)',
            "loop.call_exception_handler({'message': 'custom'})",
            "loop.call_exception_handler({'message': 'm', "
            "'exception': ValueError()})",
            'loop.set_exception_handler(123)',
            'loop.get_exception_handler() is not None',
            'asyncio.get_running_loop() is loop',
            'asyncio.get_event_loop() is loop',
        ]))

    def g_reentry(self):
        """Running, closing or stopping the loop from where it is."""
        choices = ['loop.run_until_complete(123)',
                   "loop.run_until_complete(h.coro('nested'))",
                   'loop.run_forever()' if self.phase == 'main' else
                   'loop.is_running()', 'loop.close()']
        if self.stops < 2:
            choices.append('loop.stop()')
        expr = self.pick(choices)
        if expr == 'loop.stop()':
            self.stops += 1
        if expr == 'loop.close()' and self.phase != 'main':
            expr = 'loop.is_closed()'
        self.op(expr)

    # Descriptors ------------------------------------------------------

    def a_pair(self):
        if not self.pairs or self.r.random() < 0.3:
            self.pairs.append(self.op('h.pair()'))
        return self.pick(self.pairs)

    def g_reader(self):
        p = self.a_pair()
        tag = f'r{self.n + 1}'
        roll = self.r.random()
        if roll < 0.45:
            self.op(f"loop.add_reader(V[{p}][0], h.reader, '{tag}', "
                    f'V[{p}][0])')
            self.op(f"V[{p}][1].send(b'xy')")
        elif roll < 0.7:
            self.op(f"loop.add_writer(V[{p}][1], h.writer, '{tag}', "
                    f'V[{p}][1])')
        elif roll < 0.8:
            self.op(f'loop.remove_{self.pick(["reader", "writer"])}'
                    f'(V[{p}][{self.pick([0, 1])}])')
        elif roll < 0.9:
            self.op(f'h.close_sock(V[{p}][{self.pick([0, 1])}])')
        else:
            target = self.pick(['-1', "'x'", f'V[{p}][0]'])
            cb = self.pick(['123', 'h.ucb']) if target == f'V[{p}][0]' \
                else 'h.ucb'
            self.op(f'loop.add_reader({target}, {cb})')
            self.op(f'loop.remove_reader({target})')

    # Network ----------------------------------------------------------

    def a_connection(self):
        unix = self.r.random() < 0.3
        mode = self.pick(['echo', 'echo', 'sink', 'close', 'abort'])
        lst = self.op(f"h.listener('L{self.n + 1}', '{mode}')")
        if unix:
            srv = self.aop(f'loop.create_unix_server(V[{lst}], '
                           f'h.unix_path({lst}))')
            cli = self.aop(f"loop.create_unix_connection(lambda: h.proto("
                           f"'c{lst}'), h.unix_path({lst}))")
        else:
            srv = self.aop(f"loop.create_server(V[{lst}], '127.0.0.1', 0)")
            cli = self.aop(f"loop.create_connection(lambda: h.proto("
                           f"'c{lst}'), '127.0.0.1', h.port(V[{srv}]))")
        peer = self.aop(f'V[{lst}].peer(0)')
        tr, pr = f'V[{cli}][0]', f'V[{cli}][1]'
        ended = mode in ('close', 'abort')
        if ended:
            self.aop(f'{pr}.lost')
            self.aop(f'V[{peer}].lost')
        sent = 0
        for _ in range(0 if ended else self.r.randrange(0, 4)):
            sent = self.g_conn_step(tr, pr, peer, mode, sent)
        end = 'lost' if ended else self.pick(
            ['close', 'close2', 'abort', 'write_eof', 'server_close',
             'server_abort', 'none', 'close_abort', 'abort_close',
             'eof_write', 'listener_first'])
        if end == 'listener_first':  # the server closes, the connection not
            self.op(f'V[{srv}].close()')
            self.op(f'V[{srv}].is_serving()')
            end = 'close'
        if end in ('close', 'close2', 'abort'):
            self.op(f'{tr}.{end.rstrip("2")}()')
            if end == 'close2':
                self.op(f'{tr}.close()')
        elif end in ('close_abort', 'abort_close'):
            first, second = end.split('_')
            self.op(f'{tr}.{first}()')
            self.op(f'{tr}.is_closing()')
            self.op(f'{tr}.{second}()')
        elif end in ('write_eof', 'eof_write'):
            self.op(f'{tr}.write_eof()')
            if end == 'eof_write':
                self.op(f"{tr}.write(b'after eof')")
                self.op(f'{tr}.can_write_eof()')
        elif end.startswith('server_'):
            self.op(f'V[{peer}].transport.{end[7:]}()')
        if end not in ('none', 'lost'):
            self.aop(f'{pr}.lost')
            self.aop(f'V[{peer}].lost')
        if end != 'none':
            for _ in range(self.r.randrange(0, 3)):
                self.g_after_close(tr)
        self.g_server_end(srv, unix, end != 'none')

    def g_conn_step(self, tr, pr, peer, mode, sent):
        roll = self.r.random()
        if roll < 0.45:
            data = self.pick(DATA)
            if self.r.random() < 0.3:
                self.op(f'{tr}.writelines([{data[:1]!r}, {data[1:]!r}])')
            else:
                self.op(f'{tr}.write({data!r})')
            sent += len(data)
            if mode == 'echo':
                self.aop(f'{pr}.want({sent})')
            self.aop(f'V[{peer}].want({sent})')
            self.op(f'{tr}.get_write_buffer_size()')
        elif roll < 0.6:
            self.op(f"{tr}.write({self.pick(['123', repr('text'), 'None'])})")
            self.op(f"{tr}.write(b'')")
        elif roll < 0.75:
            self.op(self.pick([
                f'{tr}.is_closing()', f'{tr}.can_write_eof()',
                f'{tr}.is_reading()', f'{tr}.get_protocol() is {pr}',
                f"{tr}.get_extra_info('nothing', 'dflt')",
                f"{tr}.get_extra_info('socket') is not None",
                f"{tr}.get_extra_info('sockname') is not None",
                f'{tr}.get_write_buffer_limits()',
            ]))
        elif roll < 0.8:
            # A descriptor a transport owns is not the user's to watch.
            self.op(f"loop.add_reader({tr}.get_extra_info('socket'), h.ucb)")
            self.op(f"loop.remove_reader({tr}.get_extra_info('socket'))")
        elif roll < 0.9:
            self.op(f'{tr}.pause_reading()')
            if self.r.random() < 0.5:
                self.op(f'{tr}.pause_reading()')
            self.op(f'{tr}.is_reading()')
            self.op(f'{tr}.resume_reading()')
            self.op(f'{tr}.is_reading()')
        else:
            hi, lo = self.pick([(100, 10), (10, 100), (-1, None), (0, 0),
                                (None, None)])
            self.op(f'{tr}.set_write_buffer_limits({hi}, {lo})')
            self.op(f'{tr}.get_write_buffer_limits()')
        return sent

    def g_after_close(self, tr):
        choice = self.pick(['write', 'write6', 'close', 'abort', 'eof',
                            'query', 'pause'])
        if choice == 'write6':
            for _ in range(6):
                self.op(f"{tr}.write(b'late')")
        else:
            self.op({
                'write': f"{tr}.write(b'late')",
                'close': f'{tr}.close()', 'abort': f'{tr}.abort()',
                'eof': f'{tr}.write_eof()',
                'query': self.pick([f'{tr}.is_closing()',
                                    f"{tr}.get_extra_info('peername') "
                                    'is not None',
                                    f'{tr}.get_write_buffer_size()']),
                'pause': f'{tr}.pause_reading()',
            }[choice])

    def g_server_end(self, srv, unix, may_wait):
        if self.r.random() < 0.2:
            return  # left to the end: closed or not by loop.close()
        self.op(self.pick([f'V[{srv}].is_serving()',
                           f'len(V[{srv}].sockets)',
                           f'V[{srv}].get_loop() is loop']))
        self.op(f'V[{srv}].close()')
        if self.r.random() < 0.3:
            self.op(f'V[{srv}].close()')
        if may_wait:
            self.aop(f'V[{srv}].wait_closed()')
        self.op(f'V[{srv}].is_serving()')
        if self.r.random() < 0.3 and not unix:
            self.aop(f"loop.create_connection(lambda: h.proto('r'), "
                     f"'127.0.0.1', h.port(V[{srv}]))")

    def a_net_bad(self):
        self.aop(self.pick([
            "loop.create_connection(lambda: h.proto('r'), '127.0.0.1', "
            'h.free_port())',
            "loop.create_connection(lambda: h.proto('r'))",
            "loop.create_connection(lambda: h.proto('r'), '127.0.0.1', 1, "
            'sock=h.pair()[0])',
            "loop.create_connection(lambda: h.proto('r'), '127.0.0.1', 'x')",
            "loop.create_connection(lambda: h.proto('r'), '127.0.0.1', 1, "
            'ssl_handshake_timeout=1)',
            "loop.create_server(lambda: h.proto('r'), '127.0.0.1', 0, "
            "backlog='x')",
            "loop.create_unix_connection(lambda: h.proto('r'), "
            "h.unix_path('missing'))",
            "loop.create_server(lambda: h.proto('r'), '127.0.0.1', "
            'h.free_port(), reuse_port=True, start_serving=False)',
        ]))

    def a_streams(self):
        srv = self.aop(f"asyncio.start_server(h.stream_handler('S{self.n + 1}'"
                       "), '127.0.0.1', 0)")
        data = self.pick(DATA[:4])
        extra = self.pick(['True', 'False'])
        self.aop(f"h.stream_client('C{srv}', h.port(V[{srv}]), {data!r}, "
                 f'{extra})')
        self.op(f'V[{srv}].close()')
        self.aop(f'V[{srv}].wait_closed()')

    def a_subprocess(self):
        roll = self.r.random()
        if roll < 0.5:
            p = self.aop("asyncio.create_subprocess_exec('/bin/echo', 'hi', "
                         'stdout=asyncio.subprocess.PIPE)')
            self.aop(f'V[{p}].communicate()')
            self.op(f'V[{p}].returncode')
        elif roll < 0.8:
            p = self.aop("asyncio.create_subprocess_shell('exit 3')")
            self.aop(f'V[{p}].wait()')
        else:
            self.aop("asyncio.create_subprocess_exec('/nonexistent/x')")

    # Closing ----------------------------------------------------------

    def g_close_ops(self):
        if self.r.random() < 0.3:
            self.op("loop.call_soon(h.cb, 'never')")
        if self.r.random() < 0.3 and not self.nan:
            self.op("loop.run_until_complete(h.coro('again'))")
        if self.r.random() < 0.2:
            self.op('loop.run_until_complete(loop.shutdown_asyncgens())')
        if self.r.random() < 0.2:
            self.op('loop.run_until_complete('
                    'loop.shutdown_default_executor())')
        late = None
        if self.r.random() < 0.3:
            late = self.op('loop.create_future()')
            self.op(f"V[{late}].add_done_callback(h.fcb('late'))")
        if self.nan:  # the loop does not run after it
            self.op(f"loop.{self.pick(['call_later', 'call_at'])}("
                    "float('nan'), h.ucb, 'nan')")
        self.op('loop.close()')
        for _ in range(self.r.randrange(0, 5)):
            self.op(self.pick([
                "loop.call_soon(h.cb, 'closed')",
                "loop.call_later(1, h.cb, 'closed')",
                "loop.call_at(1, h.cb, 'closed')",
                "loop.call_soon_threadsafe(h.cb, 'closed')",
                "loop.create_task(h.coro('closed'))",
                "loop.run_until_complete(h.coro('closed'))",
                'loop.run_forever()', 'loop.close()', 'loop.is_closed()',
                'loop.create_future().done()', 'loop.stop()',
                'loop.time() > 0', 'loop.is_running()',
                f"loop.add_reader(V[{self.a_pair()}][0], h.ucb)",
                f"loop.remove_reader(V[{self.a_pair()}][0])",
                f"loop.add_writer(V[{self.a_pair()}][1], h.ucb)",
                "loop.call_exception_handler({'message': 'after'})",
                'loop.set_debug(False)',
                'loop.run_until_complete(loop.shutdown_asyncgens())',
            ]))
        if late is not None:
            self.op(f'V[{late}].set_result(1)')

    # Whole programs ---------------------------------------------------

    SYNC = [('g_soon', 6), ('g_soon_bad', 2), ('g_soon_raise', 1),
            ('g_timer', 6), ('g_far', 1), ('g_timer_bad', 1),
            ('g_cancel', 3), ('g_handle_query', 1), ('g_threadsafe', 1),
            ('g_future', 2), ('g_future_cb', 3), ('g_future_set', 2),
            ('g_future_query', 1), ('g_task', 3), ('g_task_cancel', 1),
            ('g_loop_query', 1), ('g_reentry', 1), ('g_reader', 3)]
    MAIN = [('g_soon', 3), ('g_soon_bad', 1), ('g_soon_raise', 1),
            ('g_far', 1), ('g_cancel', 1), ('g_threadsafe', 1),
            ('g_future', 1), ('g_future_cb', 2), ('g_future_set', 2),
            ('g_task', 3), ('g_task_cancel', 2), ('a_await_task', 3),
            ('a_await_future', 1), ('a_misc', 2), ('g_loop_query', 1),
            ('g_reentry', 1), ('g_reader', 2), ('a_connection', 3),
            ('a_net_bad', 1), ('a_streams', 1), ('a_subprocess', 0.3)]

    def run_phase(self, phase, table, count):
        self.phase = phase
        names = [name for name, _ in table]
        weights = [weight for _, weight in table]
        for _ in range(count):
            getattr(self, self.r.choices(names, weights)[0])()

    def build(self):
        self.run_phase('sync', self.SYNC, self.r.randrange(2, 12))
        self.soon = []
        self.run_phase('main', self.MAIN, self.r.randrange(1, 9))
        self.emit(f'await h.drain({self.max_slot})')
        self.phase = 'close'
        self.g_close_ops()
        return self

    @property
    def source(self):
        def body(lines):
            return ''.join(f'    {line}\n' for line in lines) + '    pass\n'
        return (f'# differential program, seed {self.seed}'
                f'{", debug mode" if self.debug else ""}\n'
                'import asyncio, socket\n\n\n'
                'def sync_phase(loop, h, V):\n' + body(self.lines['sync']) +
                '\n\nasync def main(loop, h, V):\n' + body(self.lines['main']) +
                '\n\ndef close_phase(loop, h, V):\n' + body(self.lines['close']))


def generate(seed):
    return Program(seed).build()
