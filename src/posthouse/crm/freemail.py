"""Free-mail and consumer ISP domains: an address there says nothing about the
person's company, so these domains never make a company."""
from __future__ import annotations

# Exact domains.
FREE_MAIL = frozenset("""
gmail.com googlemail.com outlook.com hotmail.com live.com msn.com passport.com windowslive.com
yahoo.com ymail.com rocketmail.com icloud.com me.com mac.com aol.com aim.com
gmx.com gmx.net gmx.de gmx.at gmx.ch web.de freenet.de t-online.de arcor.de
proton.me protonmail.com protonmail.ch pm.me tutanota.com tutanota.de tuta.io
yandex.com yandex.ru ya.ru mail.ru bk.ru inbox.ru list.ru rambler.ru
zoho.com zohomail.com fastmail.com fastmail.fm hey.com hushmail.com mailbox.org posteo.de posteo.net
mail.com email.com usa.com post.com qq.com 163.com 126.com yeah.net sina.com sohu.com aliyun.com
naver.com daum.net hanmail.net rediffmail.com
libero.it virgilio.it tiscali.it alice.it orange.fr wanadoo.fr free.fr laposte.net sfr.fr
seznam.cz wp.pl o2.pl interia.pl onet.pl btinternet.com sky.com virginmedia.com ntlworld.com
comcast.net verizon.net att.net sbcglobal.net bellsouth.net charter.net cox.net earthlink.net
shaw.ca rogers.com sympatico.ca bigpond.com optusnet.com.au telstra.com xtra.co.nz
uol.com.br bol.com.br terra.com.br mail.ee inbox.lv abv.bg
""".split())

# Families spelled with many country endings: hotmail.co.uk, yahoo.fr, gmx.us, yandex.kz ...
FREE_MAIL_PREFIXES = ("hotmail.", "yahoo.", "gmx.", "yandex.", "live.", "outlook.", "aol.", "ymail.")


def is_free_mail(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain in FREE_MAIL or domain.startswith(FREE_MAIL_PREFIXES)


# Second-level endings under which the registered name is the label before them.
_TWO_PART = frozenset("""co.uk org.uk ac.uk gov.uk me.uk ltd.uk plc.uk com.au net.au org.au co.nz org.nz
co.jp ne.jp or.jp co.kr com.br com.cn com.tw com.hk com.sg com.mx com.ar co.za co.in
com.tr co.il com.my com.ph""".split())


def company_name(domain: str) -> str:
    """A first guess at a company's name from its domain: "mail.acme.co.uk" -> "Acme"."""
    labels = domain.lower().split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_PART:
        core = labels[-3]
    elif len(labels) >= 2:
        core = labels[-2]
    else:
        core = labels[0]
    return core[:1].upper() + core[1:] if core else domain
