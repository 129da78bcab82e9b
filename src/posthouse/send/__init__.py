"""Sending from Posthouse: compose, submit over SMTP, file the sent bytes in Sent."""
from .compose import ComposeError, Composed, compose
from .sent import SendResult, send
from .smtp import SendError

__all__ = ["ComposeError", "Composed", "compose", "SendResult", "send", "SendError"]
