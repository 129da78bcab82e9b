"""Alembic's environment: runs on the Engine that db/migrate.py hands over."""
from alembic import context

from posthouse.db.metadata import load_tables

target_metadata = load_tables()
engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",   # ALTER on SQLite
                      compare_type=True)
    context.run_migrations()
