"""Alembic migrations for bot.store's tables; run by bot.database.migrate."""
