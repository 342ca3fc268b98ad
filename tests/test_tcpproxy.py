"""``TcpProxy``: forwarding, the blackhole that cuts without closing, and closing.

An echo server shows the byte-level contract; PostgreSQL shows what the bot's
database driver experiences when the network goes silent under it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.tcpproxy import TcpProxy

POSTGRES = ("127.0.0.1", 5432)


class EchoServer:
    """Echoes every connection back until its EOF; counts connections accepted."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)
        conn.close()

    def close(self) -> None:
        for sock in [self._listener, *self._conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def dial(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def test_forwards_both_ways_passes_an_end_on_and_closes(echo: EchoServer) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy:
        with dial(proxy) as sock:
            sock.sendall(b"hello")
            assert receive(sock, 5) == b"hello"
            sock.shutdown(socket.SHUT_WR)  # the echo server sees EOF, closes, and so do we
            assert sock.recv(16) == b""
        open_one = dial(proxy)
        open_one.sendall(b"x")
        assert receive(open_one, 1) == b"x"
        proxy.close()
        assert open_one.recv(16) == b""  # close() ends live connections
        open_one.close()
        with pytest.raises(ConnectionRefusedError):
            dial(proxy)


def test_blackhole_silences_old_and_new_connections_and_restore_delivers(
    echo: EchoServer,
) -> None:
    with TcpProxy("127.0.0.1", echo.port) as proxy, dial(proxy) as old:
        old.sendall(b"ping")
        assert receive(old, 4) == b"ping"
        proxy.blackhole()
        old.sendall(b"held")
        with dial(proxy) as fresh:  # the connect itself succeeds...
            fresh.sendall(b"new")
            for sock in (old, fresh):  # ...but nothing comes back, and nothing closes
                sock.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    sock.recv(16)
            assert echo.accepted == 1  # the new connection never reached the server
            proxy.restore()
            for sock in (old, fresh):
                sock.settimeout(5)
            assert receive(old, 4) == b"held"  # nothing sent during the cut was lost
            assert receive(fresh, 3) == b"new"
            assert echo.accepted == 2


@pytest.fixture
def postgres_reachable() -> None:
    try:
        psycopg.connect(
            host=POSTGRES[0],
            port=POSTGRES[1],
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
        ).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")


@pytest.mark.usefixtures("postgres_reachable")
def test_a_blackholed_postgres_query_hangs_until_the_proxy_closes() -> None:
    with TcpProxy(*POSTGRES) as proxy:
        conn = psycopg.connect(
            host="127.0.0.1",
            port=proxy.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=5,
            autocommit=True,
        )
        try:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            proxy.blackhole()
            outcome: list[object] = []

            def query() -> None:
                try:
                    outcome.append(conn.execute("SELECT 2").fetchone())
                except psycopg.Error as exc:
                    outcome.append(exc)

            worker = threading.Thread(target=query, daemon=True)
            worker.start()
            worker.join(timeout=1.0)
            assert worker.is_alive() and outcome == []  # no answer, and no error either

            proxy.close()
            worker.join(timeout=10)
            assert not worker.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError)
        finally:
            conn.close()
