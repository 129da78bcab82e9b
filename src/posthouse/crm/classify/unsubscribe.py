"""Requests to be removed: a mail to a List-Unsubscribe mailto: (subject
'unsubscribe', or an unsubscribe address), or a person's reply asking, in
the words they wrote above the quoted text."""
from __future__ import annotations

import re

from .parse import Mail

# 'unsubscribe ...' (a token may follow), or a subject that is nothing but one of the words.
_SUBJECT = re.compile(r"^\s*((re|aw|fwd?|wg|tr)\s*:\s*)*(unsubscribe|unsub)\b"
                      r"|^\s*((re|aw|fwd?|wg|tr)\s*:\s*)*(remove me|remove|stop|opt[ -]?out|abmelden|austragen|abbestellen|désabonner"
                      r"|se désabonner|désinscription|desinscription|darse de baja|darme de baja|baja|cancel(lare)? (my )?subscription"
                      r"|annulla iscrizione|afmelden|uitschrijven)\s*[.!]*\s*$", re.I)
# a list's unsubscribe address: unsubscribe-TOKEN@, list-unsubscribe@, list-leave@ (Mailman)
_ADDRESS = re.compile(r"(^|[-+._])(unsubscribe|unsub|optout|opt-out)([-+._=]|$)|-leave$|-unsubscribe$", re.I)
_ASK = re.compile(
    r"\b((?<!don't )(?<!do not )unsubscribe me|please unsubscribe|(i|we) (want|wish|would like|'d like) to (unsubscribe|be removed|opt out)"
    r"|remove (me|us|my (e-?mail|address|name|details)|this (e-?mail|address)) from (your |the |this |all |any )?"
    r"(mailing |e-?mail |distribution |contact |marketing )?(list|lists|newsletter|database|mailings|e-?mails|communications)"
    r"|take (me|us|my \w+) off (your |the |this )?(mailing |e-?mail |distribution )?list|opt (me|us) out"
    r"|stop (e-?mailing|emailing|sending|contacting|mailing|spamming) (me|us)"
    r"|(don't|do not|never) (e-?mail|contact|send|write to|message) (me|us)(?=\s*(again|anymore|any more|in (the )?future|[.!]|$))"
    r"|no (more|further) (e-?mails|emails|messages|mails)|unsubscribe\b\s*[.!]*\s*$|^\s*unsubscribe\b"
    r"|(bitte )?(melden sie mich|nehmen sie mich|tragen sie mich) .{0,40}(ab|aus|heraus|raus)|bitte (abmelden|austragen|entfernen)"
    r"|keine (weiteren )?(e-?mails|mails|nachrichten|newsletter) mehr|von (ihrem|dem|ihrer) (verteiler|newsletter|liste)"
    r"|(me )?(désinscrire|désabonner|desinscrire|desabonner)|retirez[- ]moi|supprimez[- ]moi|ne plus recevoir"
    r"|darme de baja|dar de baja|eliminarme de|no (quiero|deseo) recibir"
    r"|(graag |gelieve )?(afmelden|uitschrijven)|cancellatemi|rimuovetemi|disiscrivermi|non voglio (più )?ricevere"
    r"|descadastr|remover (o )?meu (e-?mail|endereço)|não quero (mais )?receber)", re.I | re.M)
_QUOTE_START = re.compile(
    r"^(>|-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|forwarded message)"
    r"|on .{0,200}wrote:|am .{0,200}schrieb|le .{0,200}a écrit|el .{0,200}escribió|from:\s.+|von:\s.+|de\s?:\s.+|_{10,}|-- ?$)",
    re.I | re.M)


def fresh_text(body: str) -> str:
    """What the sender wrote: the text above the quoted message and signature."""
    m = _QUOTE_START.search(body or "")
    return (body[: m.start()] if m else body or "")[:4000]


def by_envelope(mail: Mail) -> bool:
    """A mail to a list's unsubscribe mailto: subject 'unsubscribe' or an unsubscribe address."""
    if _SUBJECT.match(mail.subject or "") and len(mail.subject) < 200:
        return True
    for addr in mail.addresses("To"):
        if _ADDRESS.search(addr.split("@")[0]):
            return True
    return False


def asks(text: str) -> bool:
    return bool(_ASK.search(fresh_text(text)))
