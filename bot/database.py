"""Opening the database and bringing its schema up to date with Alembic.

Called once at start by the CLI (serve, sweep, db upgrade) and by tests;
`check` is the doctor's look at the database, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url

from bot.doctor import Check, failed, passed, skipped
from bot.store import Store, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE = "run `jitsudo-bot db upgrade` (serve also migrates when it starts)"


def _alembic_config() -> Config:
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    return alembic_config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on this engine (idempotent)."""
    alembic_config = _alembic_config()
    with engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, revision)


def open_store(url: str) -> Store:
    """An engine on `url`, migrated to the latest schema, wrapped in a Store."""
    engine = make_engine(url)
    migrate(engine)
    return Store(engine)


def check(url: str) -> Iterator[Check]:
    """Doctor: the database answers, and its schema is at the newest migration.

    Never migrates (an operator may want to back up first) and never creates
    a SQLite file that is not there.
    """
    shown = make_url(url).render_as_string(hide_password=True)
    sqlite_file = make_url(url).database if url.startswith("sqlite") else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
        yield failed("database", f"the SQLite file {sqlite_file} does not exist yet; {UPGRADE}")
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.SQLAlchemyError as error:
        yield failed(
            "database",
            f"cannot connect to {shown} ({_reason(error)}); check database.url (or "
            "DATABASE_URL) and that the database server is up",
        )
        yield skipped("database migrations", "the database answers")
        return
    finally:
        engine.dispose()
    yield passed("database", f"reachable at {shown}")
    migrations = _migrations(current)
    yield migrations
    if migrations.ok:
        yield _audit_chain(url)


def _audit_chain(url: str) -> Check:
    """The audit log's hash chain is whole (bot.audit.verify), on the live database."""
    from bot.audit import verify

    engine = make_engine(url)
    try:
        verdict = verify(engine)
    finally:
        engine.dispose()
    if verdict.broken is None:
        return passed("audit chain", verdict.line.removeprefix("audit chain "))
    return failed(
        "audit chain",
        f"{verdict.line}; someone wrote to audit_events behind the bot: keep the database "
        "as it is, see `jitsudo-bot audit export`, and find who had write access",
    )


def _migrations(current: set[str]) -> Check:
    script = ScriptDirectory.from_config(_alembic_config())
    heads = set(script.get_heads())
    name = "database migrations"
    if current == heads:
        return passed(name, f"at head {', '.join(sorted(heads))}")
    if not current:
        return failed(name, f"the database has no jitsudo tables yet; {UPGRADE}")
    unknown = sorted(current - {rev.revision for rev in script.walk_revisions()})
    if unknown:
        return failed(
            name,
            f"the database is at revision {', '.join(unknown)}, which this jitsudo-bot does not "
            "know: a newer version migrated it; run that version (or newer) instead",
        )
    return failed(
        name,
        f"the database is at revision {', '.join(sorted(current))} but this version needs "
        f"{', '.join(sorted(heads))}; {UPGRADE}",
    )


def _reason(error: sa.exc.SQLAlchemyError) -> str:
    """The driver's first line (e.g. "Connection refused"), without SQLAlchemy's boilerplate."""
    original = getattr(error, "orig", None) or error
    first = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first[:200]}" if first else type(original).__name__
