"""loop.getaddrinfo() and loop.getnameinfo().

Both must answer exactly what socket.getaddrinfo()/getnameinfo() answer
for the same arguments (results, or the same socket.gaierror), and must
never block the loop. The lookups here only use numeric addresses, the
hosts file (localhost) and the services file: no network is needed.
"""
import asyncio
import socket
import threading

import pytest

HAS_IPV6 = socket.has_ipv6


def _lo_scope_id():
    try:
        return socket.if_nametoindex('lo')
    except OSError:
        return None


LO_INDEX = _lo_scope_id()


def sync_outcome(func, *args, **kwargs):
    try:
        return 'ok', func(*args, **kwargs)
    except Exception as exc:
        return type(exc), exc.args


def loop_outcome(loop, coro_func, *args, **kwargs):
    async def call():
        return await coro_func(*args, **kwargs)

    try:
        return 'ok', loop.run_until_complete(call())
    except Exception as exc:
        return type(exc), exc.args


def getaddrinfo_sync(host, port, family=0, type=0, proto=0, flags=0):
    return sync_outcome(socket.getaddrinfo, host, port, family, type, proto,
                        flags)


HOSTS = ['127.0.0.1', 'localhost', None, b'127.0.0.1', '0.0.0.0', '127.1']
if HAS_IPV6:
    HOSTS += ['::1', b'::1', '::', '::ffff:127.0.0.1']
    if LO_INDEX is not None:
        HOSTS += ['fe80::1%lo', f'fe80::1%{LO_INDEX}']

PORTS = [80, '80', None, b'80', 0, 'http', b'https', 65535]

COMBOS = [
    dict(),
    dict(family=socket.AF_INET),
    dict(family=socket.AF_INET6),
    dict(type=socket.SOCK_STREAM),
    dict(type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP),
    dict(family=socket.AF_INET, type=socket.SOCK_STREAM,
         proto=socket.IPPROTO_TCP),
    dict(flags=socket.AI_PASSIVE),
    dict(flags=socket.AI_PASSIVE, type=socket.SOCK_STREAM),
    dict(flags=socket.AI_CANONNAME),
    dict(flags=socket.AI_CANONNAME, family=socket.AF_INET),
    dict(flags=socket.AI_NUMERICHOST),
    dict(flags=socket.AI_NUMERICSERV),
    dict(flags=socket.AI_ADDRCONFIG, type=socket.SOCK_STREAM),
    dict(flags=socket.AI_V4MAPPED, family=socket.AF_INET6),
    dict(flags=socket.AI_V4MAPPED | socket.AI_ALL, family=socket.AF_INET6),
]


@pytest.mark.parametrize('host', HOSTS, ids=repr)
def test_getaddrinfo_hosts_and_ports(loop, host):
    """For every host and port form, the same answer as socket's."""
    for port in PORTS:
        expected = getaddrinfo_sync(host, port)
        got = loop_outcome(loop, loop.getaddrinfo, host, port)
        assert got == expected, (host, port)


@pytest.mark.parametrize('combo', COMBOS, ids=repr)
def test_getaddrinfo_family_type_proto_flags(loop, combo):
    """Combinations of family, type, proto and flags (AI_PASSIVE,
    AI_CANONNAME, ...): the same answer as socket's, error or not."""
    for host in HOSTS:
        for port in (443, None, '8080'):
            expected = getaddrinfo_sync(host, port, **combo)
            got = loop_outcome(loop, loop.getaddrinfo, host, port, **combo)
            assert got == expected, (host, port, combo)


def test_getaddrinfo_result_types(loop):
    """The entries are 5-tuples with enum family and type, as socket's."""
    infos = loop.run_until_complete(loop.getaddrinfo('127.0.0.1', 80))
    for family, type_, proto, canonname, sockaddr in infos:
        assert isinstance(family, socket.AddressFamily)
        assert isinstance(type_, socket.SocketKind)
        assert isinstance(proto, int)
        assert canonname == ''
        assert sockaddr == ('127.0.0.1', 80)


def test_getaddrinfo_scope_id(loop):
    """A link-local address with a %scope keeps its scope id in sockaddr."""
    if not HAS_IPV6 or LO_INDEX is None:
        pytest.skip('no IPv6 loopback interface')
    infos = loop.run_until_complete(
        loop.getaddrinfo('fe80::1%lo', 80, type=socket.SOCK_STREAM))
    assert infos == socket.getaddrinfo('fe80::1%lo', 80,
                                       type=socket.SOCK_STREAM)
    assert infos[0][4] == ('fe80::1', 80, 0, LO_INDEX)


def test_getaddrinfo_canonname(loop):
    """AI_CANONNAME fills in the canonical name, as socket's."""
    got = loop.run_until_complete(
        loop.getaddrinfo('localhost', 80, family=socket.AF_INET,
                         flags=socket.AI_CANONNAME))
    assert got == socket.getaddrinfo('localhost', 80, socket.AF_INET, 0, 0,
                                     socket.AI_CANONNAME)
    assert got[0][3] != ''


ERRORS = [
    # (host, port, kwargs)
    ('127.0.0.1', 80, dict(family=socket.AF_INET6)),
    ('::1', 80, dict(family=socket.AF_INET)),
    ('localhost', 80, dict(flags=socket.AI_NUMERICHOST)),
    ('127.0.0.1', 'no-such-service-name', {}),
    ('127.0.0.1', 'http', dict(flags=socket.AI_NUMERICSERV)),
    ('127.0.0.1', b'\xff', {}),
    ('127.0.0.1', '\u0663', {}),
    ('300.1.1.1', 80, dict(flags=socket.AI_NUMERICHOST)),
    (None, None, {}),
    ('127.0.0.1', 80, dict(type=socket.SOCK_STREAM,
                           proto=socket.IPPROTO_UDP)),
    ('127.0.0.1', 80, dict(flags=-1)),
    ('127.0.0.1', 80, dict(family=12345)),
    ('127.0.0.1', 80.5, {}),
    ('127.0.0.1', [80], {}),
    (1234, 80, {}),
    ('\udcff', 80, {}),
]


@pytest.mark.parametrize('host,port,kwargs', ERRORS, ids=repr)
def test_getaddrinfo_errors(loop, host, port, kwargs):
    """Bad or unresolvable arguments raise what socket.getaddrinfo raises:
    the same exception type (socket.gaierror mostly) with the same args."""
    expected = getaddrinfo_sync(host, port, **kwargs)
    assert expected[0] != 'ok', expected
    got = loop_outcome(loop, loop.getaddrinfo, host, port, **kwargs)
    assert got == expected


def test_getaddrinfo_gaierror_is_oserror(loop):
    """The error is a socket.gaierror (an OSError) with errno set."""
    with pytest.raises(socket.gaierror) as info:
        loop.run_until_complete(
            loop.getaddrinfo('127.0.0.1', 80, family=socket.AF_INET6))
    assert isinstance(info.value, OSError)
    assert info.value.errno in (socket.EAI_ADDRFAMILY, socket.EAI_NONAME,
                                socket.EAI_FAMILY)


def test_getaddrinfo_keyword_only(loop):
    """family, type, proto and flags are keyword-only, as in asyncio."""
    async def call():
        return await loop.getaddrinfo('127.0.0.1', 80, socket.AF_INET)

    with pytest.raises(TypeError):
        loop.run_until_complete(call())


def test_getaddrinfo_closed_loop(new_loop):
    """On a closed loop: RuntimeError for a name that needs a lookup."""
    loop = new_loop()
    loop.close()
    coro = loop.getaddrinfo('localhost', 80, flags=socket.AI_CANONNAME)
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        coro.send(None)
    coro.close()


# ---- not blocking the loop -------------------------------------------------

def test_numeric_host_needs_no_thread(aloop):
    """asyncloop answers a numeric host and port itself, without a trip to
    the executor. (The default loop always uses a thread, so this is only
    checked on asyncloop.)"""
    def no_executor(*args):
        raise AssertionError('run_in_executor called for a numeric host')

    aloop.run_in_executor = no_executor
    cases = [('127.0.0.1', 80, {}), ('127.0.0.1', '80', {}),
             ('127.0.0.1', None, {}), (b'127.0.0.1', b'80', {}),
             (None, 80, dict(flags=socket.AI_PASSIVE)),
             ('0.0.0.0', 0, dict(type=socket.SOCK_STREAM)),
             ('127.0.0.1', 80, dict(family=socket.AF_INET,
                                    type=socket.SOCK_DGRAM))]
    if HAS_IPV6:
        cases += [('::1', 443, {}), ('::', 0, dict(flags=socket.AI_PASSIVE))]
        if LO_INDEX is not None:
            cases.append(('fe80::1%lo', 80, {}))
    for host, port, kwargs in cases:
        got = aloop.run_until_complete(aloop.getaddrinfo(host, port,
                                                         **kwargs))
        assert got == socket.getaddrinfo(host, port, **kwargs), (host, port)


def test_slow_lookup_does_not_block_loop(loop, monkeypatch):
    """A lookup that takes time (a stub that waits until a timer of the
    loop has fired) runs outside the loop: the timer fires meanwhile."""
    real_getaddrinfo = socket.getaddrinfo
    timer_fired = threading.Event()
    fake = [(socket.AF_INET, socket.SOCK_STREAM, 6, '', ('192.0.2.7', 80))]

    def slow_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host != 'slow.example':
            return real_getaddrinfo(host, port, family, type, proto, flags)
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME,
                                  'Name or service not known')
        # Only returns once the loop has run the timer: a lookup made in
        # the loop's thread would wait for the full timeout.
        if not timer_fired.wait(10):
            raise AssertionError('the loop was blocked during the lookup')
        return fake

    monkeypatch.setattr(socket, 'getaddrinfo', slow_getaddrinfo)

    async def main():
        ticks = []
        asyncio.get_running_loop().call_later(
            0.05, lambda: (ticks.append(1), timer_fired.set()))
        infos = await loop.getaddrinfo('slow.example', 80)
        return infos, ticks

    infos, ticks = loop.run_until_complete(main())
    assert infos == fake
    assert ticks == [1]


def test_concurrent_lookups(loop):
    """Many lookups at once all complete with the right answers."""
    async def main():
        hosts = ['127.0.0.1', 'localhost'] * 10
        return hosts, await asyncio.gather(
            *[loop.getaddrinfo(h, 80, type=socket.SOCK_STREAM)
              for h in hosts])

    hosts, results = loop.run_until_complete(main())
    for host, infos in zip(hosts, results):
        assert infos == socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)


# ---- getnameinfo -----------------------------------------------------------

NAMEINFO = [
    (('127.0.0.1', 80), 0),
    (('127.0.0.1', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (('127.0.0.1', 53), socket.NI_DGRAM),
    (('127.0.0.1', 0), socket.NI_NUMERICHOST),
    (('127.0.0.1', 65000), 0),
]
if HAS_IPV6:
    NAMEINFO += [
        (('::1', 80, 0, 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
        (('::1', 443), socket.NI_NUMERICHOST),
    ]
    if LO_INDEX is not None:
        NAMEINFO.append((('fe80::1', 80, 0, LO_INDEX),
                         socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))


@pytest.mark.parametrize('sockaddr,flags', NAMEINFO, ids=repr)
def test_getnameinfo(loop, sockaddr, flags):
    """The same answer as socket.getnameinfo()."""
    expected = sync_outcome(socket.getnameinfo, sockaddr, flags)
    assert expected[0] == 'ok'
    assert loop_outcome(loop, loop.getnameinfo, sockaddr, flags) == expected


NAMEINFO_ERRORS = [
    (('localhost', 80), 0),
    (('127.0.0.1',), 0),
    (('127.0.0.1', 'http'), 0),
    ('127.0.0.1', 0),
    (('127.0.0.1', 80, 0, 0, 0), 0),
    (('127.0.0.1', 80), 'x'),
    (('127.0.0.1', -1), 0),
    (('1.2.3.4.5', 80), socket.NI_NUMERICHOST),
]


@pytest.mark.parametrize('sockaddr,flags', NAMEINFO_ERRORS, ids=repr)
def test_getnameinfo_errors(loop, sockaddr, flags):
    """Bad addresses raise what socket.getnameinfo() raises."""
    expected = sync_outcome(socket.getnameinfo, sockaddr, flags)
    assert expected[0] != 'ok', expected
    assert loop_outcome(loop, loop.getnameinfo, sockaddr, flags) == expected


def test_getnameinfo_default_flags(loop):
    """flags defaults to 0."""
    got = loop.run_until_complete(loop.getnameinfo(('127.0.0.1', 80)))
    assert got == socket.getnameinfo(('127.0.0.1', 80), 0)
