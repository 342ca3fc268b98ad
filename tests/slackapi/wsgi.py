"""Serve a WSGI app (e.g. Bolt's SlackRequestHandler) with waitress on loopback for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server


@contextmanager
def serve_wsgi(app: Any, *, threads: int = 4) -> Iterator[str]:
    """Yield the server's base URL (`http://127.0.0.1:PORT`) while it runs in a daemon thread."""
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=2)
        thread.join(timeout=0.05)
