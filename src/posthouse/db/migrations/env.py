"""Alembic's environment: runs on the Engine that db/migrate.py hands over."""
from alembic import context
from sqlalchemy.types import TypeDecorator

from posthouse.db.metadata import load_tables

target_metadata = load_tables()
engine = context.config.attributes["engine"]


def render_item(kind, obj, autogen_context):
    # A migration names plain SQLAlchemy types, never the project's own
    # TypeDecorators: it must keep working whatever becomes of that code.
    if kind == "type" and isinstance(obj, TypeDecorator):
        return "sa." + repr(obj.impl_instance)
    return False


with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",   # ALTER on SQLite
                      compare_type=True, render_item=render_item)
    context.run_migrations()
