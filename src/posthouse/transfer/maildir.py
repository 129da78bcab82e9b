"""Reading Maildir folders, and finding the folders of a mail tree.

A Maildir is a directory with cur/ and new/ (tmp/ too, usually). Each file
is a message; the "info" after ":2," in its name holds its flags (D draft,
F flagged, P passed, R replied, S seen, T trashed), and Dovecot keeps
keywords as the letters a-z, named in the folder's dovecot-keywords file.
The file's modification time is the message's INTERNALDATE.

Trees: Maildir++ (the INBOX at the root, subfolders as ".Sub.Folder" dirs
beside cur/, names in modified UTF-7, as Dovecot and Courier keep them),
plain nested Maildirs (mbsync's "SubFolders Verbatim", Dovecot's LAYOUT=fs),
and directories of mbox files (mutt's ~/Mail, Thunderbird's ".sbd" dirs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from ..imap.protocol import mutf7
from .mbox import looks_like_mbox
from .source import SourceError, SourceMessage

INFO_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered",
              "S": "\\Seen", "T": "\\Deleted"}
FLAG_LETTERS = {flag.lower(): letter for letter, flag in INFO_FLAGS.items()}
# Files that are a mail program's bookkeeping, never mail.
_NOT_MAIL = (".msf", ".dat", ".json", ".sqlite", ".db", ".lock", ".html", ".txt")


@dataclass(slots=True)
class Folder:
    name: str       # the mailbox, "/"-separated
    kind: str       # "maildir" or "mbox"
    path: str


def is_maildir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def _decode(name: str) -> str:
    try:
        return mutf7.decode(name)
    except ValueError:
        return name     # not modified UTF-7: the name as it is


def _folder_name(parts: list[str]) -> str:
    if not parts:
        return "INBOX"
    if parts[0].upper() == "INBOX":
        parts = ["INBOX"] + parts[1:]
    return "/".join(parts)


def find_folders(path: str) -> list[Folder]:
    """Every folder in the mbox file or tree at path; SourceError if there is none."""
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory")
    if os.path.isfile(path):
        try:
            if os.path.getsize(path) and not looks_like_mbox(path):
                raise SourceError(f"{path}: not an mbox file (it doesn't start with a \"From \" line)")
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from None
        return [Folder(_mbox_folder_name(os.path.basename(path)), "mbox", path)]
    if not os.path.isdir(path):
        raise SourceError(f"{path}: neither a file nor a directory")
    found = list(_walk(path, []))
    if not found:
        raise SourceError(f"{path}: neither a Maildir (no cur/ and new/ in it) nor a tree of "
                          "Maildirs or mbox files")
    names: dict[str, str] = {}
    for folder in found:
        if folder.name in names:
            raise SourceError(f"{path}: {names[folder.name]} and {folder.path} are both the folder {folder.name}")
        names[folder.name] = folder.path
    return found


def _mbox_folder_name(filename: str) -> str:
    base = filename[:-5] if filename.lower().endswith(".mbox") else filename
    return "INBOX" if base.upper() == "INBOX" else base


def _walk(path: str, parts: list[str]) -> Iterator[Folder]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror or e}") from None
    if is_maildir(path):
        yield Folder(_folder_name(parts), "maildir", path)
        for entry in entries:
            if not entry.is_dir() or entry.name in ("cur", "new", "tmp"):
                continue
            if entry.name.startswith(".") and entry.name not in (".", "..") and is_maildir(entry.path):
                # Maildir++: ".A.B" is the folder A/B (beside the INBOX at the root)
                sub = [_decode(p) for p in entry.name[1:].split(".") if p]
                if sub:
                    yield Folder(_folder_name(parts + sub), "maildir", entry.path)
            elif not entry.name.startswith("."):
                yield from _walk(entry.path, parts + [_decode(entry.name)])
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            name = entry.name[:-4] if entry.name.endswith(".sbd") else entry.name
            yield from _walk(entry.path, parts + [_decode(name)])
        elif entry.is_file() and not entry.name.lower().endswith(_NOT_MAIL):
            if entry.stat().st_size and looks_like_mbox(entry.path):
                yield Folder(_folder_name(parts + [_mbox_folder_name(entry.name)]), "mbox", entry.path)


def _keywords(path: str) -> dict[str, str]:
    """Dovecot's dovecot-keywords: "N name" lines; letter a is keyword 0."""
    out = {}
    try:
        with open(os.path.join(path, "dovecot-keywords"), encoding="utf-8", errors="replace") as f:
            for line in f:
                number, _, name = line.strip().partition(" ")
                if number.isdigit() and int(number) < 26 and name:
                    out[chr(ord("a") + int(number))] = name
    except OSError:
        pass
    return out


def flags_of(filename: str, keywords: dict[str, str] | None = None) -> frozenset:
    _, sep, info = filename.rpartition(":2,")
    if not sep:
        return frozenset()
    flags = {INFO_FLAGS[c] for c in info if c in INFO_FLAGS}
    if keywords:
        flags |= {keywords[c] for c in info if c in keywords}
    return frozenset(flags)


def message_files(path: str) -> list[tuple[float, str, str, int]]:
    """(mtime, sub dir, file name, size) of each message in the Maildir at path, oldest first."""
    files = []
    for sub in ("cur", "new"):
        directory = os.path.join(path, sub)
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if not entry.name.startswith(".") and entry.is_file():
                        st = entry.stat()
                        files.append((st.st_mtime, sub, entry.name, st.st_size))
        except OSError as e:
            raise SourceError(f"{directory}: {e.strerror or e}") from None
    files.sort()
    return files


def read_maildir(path: str, folder: str) -> Iterator[SourceMessage | SourceError]:
    """The messages of the Maildir at path; a file that is no message is a SourceError yielded."""
    keywords = _keywords(path)
    for _mtime, sub, name, _size in message_files(path):
        file = os.path.join(path, sub, name)
        try:
            with open(file, "rb") as f:
                raw = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except FileNotFoundError:
            continue    # moved or deleted by a mail program meanwhile
        except OSError as e:
            raise SourceError(f"{file}: {e.strerror or e}") from None
        if not raw.strip():
            yield SourceError(f"{file}: an empty file, not a message; left out")
            continue
        # (new/ holds mail no program has seen: no flags, whatever its name says.)
        flags = flags_of(name, keywords) if sub == "cur" else frozenset()
        yield SourceMessage(folder, raw, flags, mtime, file)
