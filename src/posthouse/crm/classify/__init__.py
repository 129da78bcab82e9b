"""Reply sorting: bounce (RFC 3464 and the MTAs' and providers' own formats),
complaint (ARF), auto-reply (RFC 3834 and vendors' marks), unsubscribe, reply,
other; for a bounce, each failed recipient's status, hardness and reason.
`classify(raw: bytes) -> Classification`."""
from .core import classify
from .model import KINDS, REASONS, Classification, Recipient

__all__ = ["classify", "Classification", "Recipient", "KINDS", "REASONS"]
