"""An asyncio IMAP client on the project's own protocol codec (imap/protocol)."""
from .connection import FetchItem, Folder, Idle, ImapConnection, Selected
from .errors import BadResponse, ConnectionLost, ImapError, LoginFailed, NoResponse
from .transport import Endpoint

__all__ = ["BadResponse", "ConnectionLost", "Endpoint", "FetchItem", "Folder", "Idle", "ImapConnection",
           "ImapError", "LoginFailed", "NoResponse", "Selected"]
