"""Request bodies are limited per route, and refused before anything reads them.

Bolt reads and parses a whole body before checking its signature, so without a
limit a few large POSTs exhaust the bot's memory. These tests attack over real
sockets while checking that the bot keeps answering.
"""

from __future__ import annotations

import io
import resource
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from bot.server import SLACK_MAX_BODY
from tests.harness import Harness, running_bot

ATTACK_BODY = 200 * 1024 * 1024  # would be plainly visible in the max RSS if it were read
BLOCK = b"x" * (256 * 1024)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with running_bot(tmp_path) as harness:
        yield harness


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: the connection closed without an answer
    sent: int  # body bytes the server took before it answered or closed


def _connect(h: Harness) -> socket.socket:
    address = urlsplit(h.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _post(h: Harness, *, size: int, chunked: bool = False) -> Outcome:
    """POST /slack/events with `size` bytes of body, stopping once the server answers.

    A client that kept writing after the answer would get a reset and could lose it.
    """
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    with _connect(h) as sock:
        sock.sendall(
            f"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n".encode()
        )
        sent = 0
        for piece in _pieces(size, chunked=chunked):
            if not _send_unless_answered(sock, piece):
                break
            sent += len(piece)
        return Outcome(_status(sock), sent)


def _pieces(size: int, *, chunked: bool) -> Iterator[bytes]:
    for start in range(0, size, len(BLOCK)):
        block = BLOCK[: size - start]
        yield b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


def _send_unless_answered(sock: socket.socket, data: bytes) -> bool:
    """Send all of `data`; False as soon as the server answers or closes instead."""
    view = memoryview(data)
    while view:
        readable, writable, _ = select.select([sock], [sock], [], 5)
        if readable or not writable:
            return False
        try:
            count = sock.send(view)
        except (BrokenPipeError, ConnectionResetError):
            return False
        view = view[count:]
    return True


def _status(sock: socket.socket) -> int | None:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_large_posts_get_413_before_they_are_read_while_the_bot_keeps_answering(
    h: Harness,
) -> None:
    rss_before = _max_rss_mb()
    outcomes: dict[str, Outcome] = {}

    def attack(name: str) -> None:
        outcomes[name] = _post(h, size=ATTACK_BODY, chunked=name.startswith("chunked"))

    names = ["declared-1", "declared-2", "declared-3", "chunked-1", "chunked-2"]
    attackers = [threading.Thread(target=attack, args=(name,)) for name in names]
    for attacker in attackers:
        attacker.start()
    answered = 0
    while any(attacker.is_alive() for attacker in attackers) or answered < 3:
        with urlopen(f"{h.url}/healthz", timeout=5) as response:
            assert response.status == 200
        assert "/jitsudo request" in h.command("help")
        answered += 1
    for attacker in attackers:
        attacker.join()

    assert sorted(outcomes) == sorted(names)
    assert all(outcome.status == 413 for outcome in outcomes.values()), outcomes
    assert all(outcome.sent < ATTACK_BODY // 10 for outcome in outcomes.values()), outcomes
    assert _max_rss_mb() - rss_before < 50, "the bodies were read into memory"
    assert h.bot.store.find() == [] and h.replies()  # only the help replies


def test_the_limit_is_inclusive_and_counts_the_body_exactly(h: Harness) -> None:
    """A body of exactly the limit reaches Bolt (401: unsigned); one byte more is 413."""
    at_limit = _post(h, size=SLACK_MAX_BODY)
    over = _post(h, size=SLACK_MAX_BODY + 1)
    assert (at_limit.status, over.status) == (401, 413)
    assert at_limit.sent == SLACK_MAX_BODY


def test_the_app_refuses_by_declared_length_without_reading(h: Harness) -> None:
    """Behind any WSGI server: the route's limit is checked before wsgi.input is touched."""

    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body was read")

    started: list[str] = []
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "CONTENT_LENGTH": str(SLACK_MAX_BODY + 1),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "wsgi.input": Unreadable(),
    }
    body = b"".join(h.bot.wsgi()(environ, lambda status, headers: started.append(status)))
    assert started == ["413 Content Too Large"]
    assert b"1048576 bytes" in body


def test_the_server_cap_is_the_largest_route_limit(h: Harness) -> None:
    wsgi = h.bot.wsgi()
    assert wsgi.largest_body == max(route.max_body for route in wsgi.routes.values())
    assert h.running is not None
    # waitress refuses a body whose length *equals* its setting, hence the + 1
    assert h.running.server.adj.max_request_body_size == wsgi.largest_body + 1
