"""Local HTTP servers that answer as the test tells them, and what they received.

``http_server`` (the fixture in tests/unit/conftest.py) starts aiohttp servers whose every request
is recorded as a ``Seen`` and answered by a ``Reply``; ``read_request`` reads one raw request
(head and ``Content-Length`` body) for the raw TCP servers of the transport tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET = "s3cr3t"
KEY = "k"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Reply = Callable[[Seen, int], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class HTTPServer:
    port: int
    requests: list[Seen]


def json_reply(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")
