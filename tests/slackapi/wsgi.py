"""Serve a WSGI app (e.g. Bolt's SlackRequestHandler) with waitress on loopback for tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server


def run_in_thread(server: Any) -> Callable[[], None]:
    """Run a waitress server in a daemon thread; return the function that stops it.

    Closing the server from another thread can pull its socket from under the
    select() loop (EBADF): that is the loop ending, not a failure.
    """

    def serve() -> None:
        with contextlib.suppress(OSError, ValueError):
            server.run()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def stop() -> None:
        server.close()
        server.task_dispatcher.shutdown(timeout=2)
        thread.join(timeout=2)

    return stop


@contextmanager
def serve_wsgi(app: Any, *, threads: int = 4) -> Iterator[str]:
    """Yield the server's base URL (`http://127.0.0.1:PORT`) while it runs in a daemon thread."""
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = run_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop()
