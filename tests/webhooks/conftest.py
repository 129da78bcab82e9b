"""Webhook tests run on SQLite and PostgreSQL, as the CRM's do."""
from ..crm.conftest import crm_engine  # noqa: F401  (the fixture, shared)
