"""Sending campaigns: one message per recipient, handed to the mail server's
outbound queue (delivery/queue.py, which relays through the `[relay]`
smarthost and retries), at `[campaigns] rate` messages per minute per campaign.

Each recipient goes queued -> sending -> sent, each step committed: 'sending'
before the message is handed to the queue, 'sent' after the queue has it
(durably, in the mail store). A restart finds any left 'sending' (the process
ended between the two) and marks them failed instead of sending again: a
campaign never sends a recipient two messages. Opted-out and hard-bouncing
addresses are skipped when their turn comes, whatever they were when the
campaign was made.

No copy of each message is filed in Sent (hundreds of near-identical copies);
the campaign page is the record of what was sent."""
from __future__ import annotations

import asyncio
import logging
import time
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from . import render
from .model import Campaigns
from .unsubscribe import list_unsubscribe

log = logging.getLogger("posthouse.campaigns")


def public_url(config) -> str:
    if config.campaigns_url:
        return config.campaigns_url.rstrip("/")
    host = config.web_host if config.web_host not in ("0.0.0.0", "::", "") else (config.hostname or "localhost")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.web_port}"


def compose(campaign: dict, recipient: dict, contact: dict | None, base_url: str) -> bytes:
    """The message for one recipient: merge fields as text, its own Message-ID,
    and the unsubscribe headers of RFC 2369 and RFC 8058."""
    if not recipient["address"].isascii():
        raise ValueError("an internationalised address (it would need SMTPUTF8, which campaigns don't use yet)")
    values = render.values_of(contact or {}, recipient["address"])
    msg = EmailMessage()
    msg["From"] = campaign["from_address"]
    name = values["name"]
    try:
        msg["To"] = Address(display_name=" ".join(name.split()), addr_spec=recipient["address"]) if name \
            else recipient["address"]
    except (ValueError, IndexError):
        msg["To"] = recipient["address"]
    msg["Subject"] = render.render(campaign["subject"], values, one_line=True)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{recipient['message_id']}>"
    msg["List-Unsubscribe"] = list_unsubscribe(base_url, campaign["secret"], recipient["id"],
                                               campaign["from_address"])
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(render.render(campaign["body"], values))
    # (lines up to RFC 5322's 998: the unsubscribe URL stays on its header's line)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n", max_line_length=998))


class CampaignSender:
    """The background task in `posthouse serve`. queue: enqueue(user_id,
    sender, recipients, data) -> id (OutboundQueue); user_id(name) -> the
    mail store's id of a user (for the queue's bounces) or None."""

    def __init__(self, campaigns: Campaigns, queue, config, user_id, *, poll: float = 1.0):
        self.campaigns = campaigns
        self.queue = queue
        self.config = config
        self.user_id = user_id
        self.poll = poll
        self.interval = 60.0 / max(config.campaigns_rate, 1e-6)
        self._next: dict[int, float] = {}       # campaign id -> when its next message may go
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="campaigns")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        left = await asyncio.to_thread(self.campaigns.interrupted)
        if left:
            log.warning("campaigns: %d recipient%s left mid-queueing by the last run marked failed (never sent twice)",
                        left, "" if left == 1 else "s")
        while True:
            try:
                wait = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaigns: a sending round failed (tried again)")
                wait = 5.0
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=min(self.poll, wait))
            finally:
                waiter.cancel()

    async def run_once(self) -> float:
        """Send what is due of every campaign being sent; the seconds until more is."""
        wait = self.poll
        for campaign in await asyncio.to_thread(self.campaigns.sending):
            due = self._next.get(campaign["id"], 0.0)
            while due <= time.monotonic():
                sent = await self.send_next(campaign)
                if sent is None:        # nothing left
                    break
                if sent:                # (a skipped recipient takes none of the rate)
                    due = time.monotonic() + self.interval
            self._next[campaign["id"]] = due
            wait = min(wait, due - time.monotonic())
        return max(0.01, wait)

    async def send_next(self, campaign: dict) -> bool | None:
        """The campaign's next recipient: True if sent, False if skipped or
        failed, None if none is left (the campaign is then done)."""
        recipient = await asyncio.to_thread(self.campaigns.next_queued, campaign["id"])
        if recipient is None:
            if await asyncio.to_thread(self.campaigns.finish_if_done, campaign["id"]):
                log.info("campaign %d (%s): done", campaign["id"], campaign["name"])
            return None
        why = await asyncio.to_thread(self.campaigns.why_skip, recipient)
        if why:
            await asyncio.to_thread(self.campaigns.mark, recipient["id"], "skipped", why, only_from="queued")
            return False
        if not getattr(self.queue, "enabled", True):
            await asyncio.to_thread(self.campaigns.mark, recipient["id"], "failed",
                                    "no [relay] smarthost is configured: mail to other domains can't leave")
            return False
        contact = await asyncio.to_thread(self.campaigns.crm.get_contact, recipient["contact_id"]) \
            if recipient["contact_id"] is not None else None
        try:
            data = compose(campaign, recipient, contact, public_url(self.config))
        except (ValueError, TypeError, IndexError, UnicodeError) as e:     # an address email can't write
            await asyncio.to_thread(self.campaigns.mark, recipient["id"], "failed", f"can't be written: {e}")
            return False
        user_id = await self.user_id(campaign["owner"])
        if not await asyncio.to_thread(self.campaigns.mark, recipient["id"], "sending", only_from="queued"):
            return False        # taken meanwhile (another node)
        try:
            await self.queue.enqueue(user_id, campaign["from_address"], [recipient["address"]], data)
        except Exception as e:      # not handed over: safe to call failed (it was never queued)
            log.warning("campaign %d: %s could not be queued: %s", campaign["id"], recipient["address"], e)
            await asyncio.to_thread(self.campaigns.mark, recipient["id"], "failed", f"could not be queued: {e}")
            return False
        await asyncio.to_thread(self.campaigns.mark, recipient["id"], "sent")
        return True
