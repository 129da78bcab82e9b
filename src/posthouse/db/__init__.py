"""The CRM side's database: contacts, activities, tracked accounts, the tracker's
cursors, API tokens. SQLAlchemy Core over SQLite (crm.sqlite3 in the data
directory) or PostgreSQL (`database_url`). The mail store keeps its own code."""
