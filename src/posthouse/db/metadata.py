"""The one MetaData every table of the CRM side is declared on (crm/, tracker/,
accounts/, web/ each declare theirs in a `tables.py`), with a naming
convention so that migrations name constraints the same on every database."""
from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# The modules that declare tables; importing them fills `metadata`.
TABLE_MODULES = ("posthouse.accounts.tables", "posthouse.tracker.tables",
                 "posthouse.crm.tables", "posthouse.web.tables",
                 "posthouse.crm.documents_tables", "posthouse.campaigns.tables",
                 "posthouse.crm.notes_tables", "posthouse.webhooks.tables", "posthouse.web.session_tables")


def load_tables() -> MetaData:
    import importlib
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata
