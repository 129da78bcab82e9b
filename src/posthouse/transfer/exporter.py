"""`posthouse export`: a user's mailboxes out to a Maildir tree.

Layouts: "maildir++" (the default; what Dovecot's maildir and mbsync's
"SubFolders Maildir++" read): the INBOX at the root, every other mailbox a
".A.B" directory beside it, names in modified UTF-7; "verbatim" (mbsync's
"SubFolders Verbatim", Dovecot's LAYOUT=fs): DIR/INBOX, DIR/A/B.

A file per message, in cur/, named "<time>.U<uidvalidity>x<uid>.posthouse,
S=<size>,W=<size with CRLF>:2,<flags>", with LF line ends (as Maildir keeps
mail) and its modification time the INTERNALDATE. Flags: \\Draft D,
\\Flagged F, $Forwarded P, \\Answered R, \\Seen S, \\Deleted T; keywords
have no place in a Maildir name and are left out. Exporting into the same
directory again writes only what is new, and renames files whose flags
changed: the name before ":2," stays the same for a message.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..imap.protocol import mutf7
from ..store.api import NoSuchUser
from .maildir import FLAG_LETTERS
from .source import SourceError

CHUNK = 500


@dataclass
class ExportReport:
    written: int = 0
    renamed: int = 0        # flags changed since an earlier export
    unchanged: int = 0
    folders: dict = field(default_factory=dict)


def folder_path(root: str, name: str, layout: str) -> str:
    parts = name.split("/")
    if layout == "verbatim":
        return os.path.join(root, *parts)
    if name == "INBOX":
        return root
    encoded = [mutf7.encode(p) for p in parts]
    if any("." in p for p in encoded) or any(p in ("", "cur", "new", "tmp") for p in encoded):
        raise SourceError(f"the mailbox {name!r} has no Maildir++ name (a '.' or an empty part in it); "
                          "export with --layout verbatim")
    return os.path.join(root, "." + ".".join(encoded))


def info_of(flags) -> str:
    return "".join(sorted(FLAG_LETTERS[f.lower()] for f in flags if f.lower() in FLAG_LETTERS))


def _existing(path: str) -> dict[str, str]:
    """Files there already, by the name before their ":2," info."""
    out = {}
    for sub in ("cur", "new"):
        try:
            for name in os.listdir(os.path.join(path, sub)):
                out[name.partition(":2,")[0]] = os.path.join(path, sub, name)
        except FileNotFoundError:
            pass
    return out


def _make_maildir(path: str) -> None:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def run_export(store, user_name: str, root: str, layout: str = "maildir++", progress=None) -> ExportReport:
    user = store.get_user(user_name)
    if user is None:
        raise NoSuchUser(f"no user {user_name}")
    mailboxes = store.list_mailboxes(user.id)
    paths = {mb.name: folder_path(root, mb.name, layout) for mb in mailboxes}    # every name checked first
    report = ExportReport()
    for mb in mailboxes:
        path = paths[mb.name]
        _make_maildir(path)
        info, entries = store.load_index(mb.id)
        existing = _existing(path)
        count = 0
        for i in range(0, len(entries), CHUNK):
            chunk = entries[i:i + CHUNK]
            data = store.message_data(mb.id, [e.uid for e in chunk], with_bytes=True)
            for e in chunk:
                md = data.get(e.uid)
                if md is None:
                    continue    # expunged meanwhile
                crlf = md.inline if md.inline is not None else store.read_blob(md.blob_key)
                raw = crlf.replace(b"\r\n", b"\n")
                base = f"{int(e.internaldate)}.U{info.uidvalidity}x{e.uid}.posthouse,S={len(raw)},W={len(crlf)}"
                name = f"{base}:2,{info_of(e.flags)}"
                final = os.path.join(path, "cur", name)
                old = existing.get(base)
                if old is not None:
                    if old != final:
                        os.rename(old, final)
                        report.renamed += 1
                    else:
                        report.unchanged += 1
                    continue
                tmp = os.path.join(path, "tmp", base)
                with open(tmp, "wb") as f:
                    f.write(raw)
                os.utime(tmp, (e.internaldate, e.internaldate))
                os.rename(tmp, final)
                report.written += 1
                count += 1
            if progress:
                progress(len(chunk))
        report.folders[mb.name] = count
    os.sync()   # one flush for the whole export, not an fsync per file
    return report
