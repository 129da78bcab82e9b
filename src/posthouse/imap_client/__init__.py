"""An asyncio IMAP client on the project's own protocol codec (imap/protocol)."""
from .connection import FetchItem, Folder, Idle, ImapConnection, Selected  # noqa: F401
from .errors import BadResponse, ConnectionLost, ImapError, LoginFailed, NoResponse  # noqa: F401
from .transport import Endpoint  # noqa: F401
