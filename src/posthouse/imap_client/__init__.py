"""An asyncio IMAP client on the project's own protocol codec (imap/protocol)."""
