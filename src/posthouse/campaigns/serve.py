"""Campaigns inside `posthouse serve`: the sender (to the outbound queue), the
observer of the CRM's events that records results, and the keyword worker.
Called with one line from app._start_crm_side."""
from __future__ import annotations

from ..accounts.session import open_session
from .keywords import KeywordWorker
from .model import Campaigns
from .results import observe
from .sending import CampaignSender, public_url


async def start_campaigns(config, ctx, side, closers: list, started: list) -> None:
    campaigns = Campaigns(side.crm)

    async def user_id(name: str):
        user = await ctx.service.call("get_user", name)
        return user.id if user is not None else None

    sender = CampaignSender(campaigns, ctx.queue, config, user_id)
    keywords = KeywordWorker(side.engine, side.accounts, open_session)
    side.crm.observers.append(observe(side.crm, on_keyword=keywords.wake))
    sender.start()
    keywords.start()
    closers.append(sender.close)
    closers.append(keywords.close)
    started.append(("campaigns: at most %s messages a minute each, through %s; unsubscribe links to %s",
                    config.campaigns_rate, f"the relay {config.relay_host}:{config.relay_port}" if config.relay_host
                    else "no relay (set [relay] host to send campaigns)", public_url(config)))
