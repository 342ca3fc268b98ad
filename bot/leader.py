"""Leader election so that one replica at a time runs the timers and delivers notices.

PostgreSQL: a session-level advisory lock held on a dedicated connection. If
the leader dies its connection closes, the lock is released, and another
replica takes it on its next attempt (every tick, so well within one sweep
interval). SQLite: the bot runs as one replica, which is always the leader.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
LOCK_KEY = 0x6A69747375646F  # "jitsudo"


class Leadership:
    """`check()` keeps or seeks leadership; cheap enough to call every second."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.single_replica = engine.dialect.name != "postgresql"
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def check(self) -> bool:
        if self.single_replica:
            return True
        with self._lock:
            if self._connection is not None and self._alive(self._connection):
                return True
            self._drop()
            return self._acquire()

    def release(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY}
                    )
                except sa.exc.DBAPIError:
                    log.warning("could not unlock leadership cleanly")
            self._drop()

    def _acquire(self) -> bool:
        try:
            connection = self.engine.connect()
        except sa.exc.DBAPIError as error:
            log.warning("cannot reach the database for leadership: %s", error)
            return False
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}
        ).scalar()
        connection.commit()
        if got:
            log.info("this replica is now the leader")
            self._connection = connection
            return True
        connection.close()
        return False

    def _alive(self, connection: Connection) -> bool:
        try:
            connection.execute(sa.text("SELECT 1"))
            connection.commit()
            return True
        except sa.exc.DBAPIError:
            log.warning("lost the leadership connection")
            return False

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except sa.exc.DBAPIError:
                pass
            self._connection = None
