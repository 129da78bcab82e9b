from sqlalchemy import inspect


def test_tables_exist(crm_engine):
    names = set(inspect(crm_engine).get_table_names())
    assert {"contacts", "contact_emails", "messages", "message_places", "activities",
            "private_entries", "message_addresses"} <= names
