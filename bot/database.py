"""Opening the database and bringing its schema up to date with Alembic.

Called once at start by the CLI (serve, sweep, db upgrade) and by tests.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from bot.store import Store, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on this engine (idempotent)."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, revision)


def open_store(url: str) -> Store:
    """An engine on `url`, migrated to the latest schema, wrapped in a Store."""
    engine = make_engine(url)
    migrate(engine)
    return Store(engine)
