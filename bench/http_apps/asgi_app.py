"""The ASGI application the uvicorn servers of bench/http.py run.

A bare ASGI callable, no framework, so that what is measured is uvicorn's
HTTP layer and the event loop under it:

- ``GET /plaintext``: ``Hello, World!`` as text/plain;
- ``GET /json``: ``{"message": "Hello, World!"}``, serialised per request.

Anything else is a 404. uvicorn runs it with ``--lifespan off``.
"""

import json

PLAIN_BODY = b'Hello, World!'
PLAIN_HEADERS = [(b'content-type', b'text/plain; charset=utf-8'),
                 (b'content-length', str(len(PLAIN_BODY)).encode())]
NOT_FOUND_HEADERS = [(b'content-type', b'text/plain; charset=utf-8'),
                     (b'content-length', b'0')]


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    if scope['path'] == '/plaintext':
        status, headers, body = 200, PLAIN_HEADERS, PLAIN_BODY
    elif scope['path'] == '/json':
        body = json.dumps({'message': 'Hello, World!'}).encode()
        headers = [(b'content-type', b'application/json'),
                   (b'content-length', str(len(body)).encode())]
        status = 200
    else:
        status, headers, body = 404, NOT_FOUND_HEADERS, b''
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body', 'body': body})
