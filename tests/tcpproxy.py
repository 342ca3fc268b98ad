"""A TCP proxy that can cut connections without closing them, for network-fault tests.

A cut network is silent: no FIN, no RST, no error -- the peer's reads block and
its writes are swallowed until some timeout of its own fires. Stopping a
server cannot show that (the kernel answers with RST and clients fail fast),
so tests put ``TcpProxy`` between a client and its server and call
``blackhole()``::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/postgres"
        ...
        proxy.blackhole()   # every connection, old and new, goes silent
        proxy.restore()     # and carries on

While blackholed the proxy still accepts new connections (a connect succeeds,
then nothing ever answers) but opens no upstream connection for them until
``restore()``, and it keeps every socket open. The kernel still ACKs what
peers send, so nothing errors quickly: the peers see silence, which is what a
partition looks like to an application. Nothing is dropped: bytes sent during
the blackhole wait (read and held by the proxy, or still in kernel buffers)
and are delivered on ``restore()``, as TCP retransmission would deliver them
after a healed partition; an end closed meanwhile is passed on only then. The
one chunk a forwarding thread may be writing at the instant ``blackhole()`` is
called still goes through. ``close()`` shuts every connection, which the
peers see as the connection closing.

One thread per direction per connection, plus one accepting: fine for tests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

_CHUNK = 65536


def _shut(*socks: socket.socket) -> None:
    """Shut both ways, which (unlike close) wakes a thread blocked on the socket."""
    for sock in socks:
        with contextlib.suppress(OSError):  # already shut or closed
            sock.shutdown(socket.SHUT_RDWR)


class _Link:
    """One proxied connection: its two sockets and how many directions still run."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.running = 2


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``, with a cut switch."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._forwarding = True
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    # ---- the switch ----

    def blackhole(self) -> None:
        """Stop forwarding in both directions, on existing and new connections alike."""
        with self._cond:
            self._forwarding = False

    def restore(self) -> None:
        """Forward again, delivering what was held back."""
        with self._cond:
            self._forwarding = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop accepting and shut every connection; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            sockets = [self._listener, *self._sockets]
            threads = list(self._threads)
        _shut(*sockets)
        for thread in threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- plumbing ----

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        """Remember ``sock`` for ``close()``; False (and closed) if the proxy is closing."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            if not self._closed:
                self._sockets.append(sock)
                return True
        sock.close()
        return False

    def _may_forward(self) -> bool:
        """Wait out a blackhole; False once the proxy is closing."""
        with self._cond:
            self._cond.wait_for(lambda: self._forwarding or self._closed)
            return not self._closed

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was shut by close()
                return
            if self._track(client):
                self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        if not self._may_forward():  # a blackholed connect stays unanswered until restore
            return
        try:
            upstream = socket.create_connection(self._target, timeout=10)
        except OSError:  # target down: the client sees its connection closed
            self._release(client)
            return
        upstream.settimeout(None)
        if not self._track(upstream):
            return
        link = _Link(client, upstream)
        self._spawn(self._pump, link, client, upstream)
        self._spawn(self._pump, link, upstream, client)

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        """Copy one direction; an EOF half-closes ``dst``, a reset shuts both ends."""
        try:
            while True:
                data = src.recv(_CHUNK)
                if not self._may_forward():
                    return  # closing: close() owns the sockets now
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    break
                dst.sendall(data)
        except OSError:  # a reset on one side becomes a close of the other
            _shut(src, dst)
        with self._cond:
            link.running -= 1
            finished = link.running == 0
        if finished:
            self._release(*link.sockets)

    def _release(self, *socks: socket.socket) -> None:
        """Close sockets of a finished connection so a long-lived proxy holds no stale fds."""
        _shut(*socks)
        with self._cond:
            if self._closed:  # close() is shutting and closing everything itself
                return
            for sock in socks:
                self._sockets.remove(sock)
        for sock in socks:
            sock.close()
