"""Posthouse: an IMAP mail server where the mail stays on the server."""

__version__ = "0.1.0"
