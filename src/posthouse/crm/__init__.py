"""Contacts, companies, activities: matching participants, privacy, reply sorting, documents.
The CRM never talks IMAP: it takes the tracker's facts (tracker/facts.py)."""
