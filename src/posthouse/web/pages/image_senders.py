"""The senders whose remote images each user allowed ("always show images
from this sender"): kept in memory and in one JSON file in the data
directory (web-image-senders.json), rewritten whole (atomically) on change.
Small on purpose: at most MAX_PER_USER addresses a user."""
from __future__ import annotations

import json
import os
import threading

MAX_PER_USER = 5000
FILE = "web-image-senders.json"


class ImageSenders:
    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._by_user: dict[str, set[str]] = {}
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                self._by_user = {str(u): {str(a) for a in v if isinstance(a, str)}
                                 for u, v in data.items() if isinstance(v, list)}
            except (OSError, ValueError, AttributeError):
                self._by_user = {}      # unreadable: images blocked again, nothing worse

    @staticmethod
    def _key(address: str) -> str:
        return address.strip().lower()

    def allowed(self, user: str, address: str) -> bool:
        if not address or "@" not in address:
            return False
        with self._lock:
            return self._key(address) in self._by_user.get(user, ())

    def set(self, user: str, address: str, allow: bool) -> None:
        if not address or "@" not in address or len(address) > 320:
            raise ValueError("not an address")
        with self._lock:
            addresses = self._by_user.setdefault(user, set())
            if allow:
                if len(addresses) >= MAX_PER_USER:
                    raise ValueError(f"at most {MAX_PER_USER} senders")
                addresses.add(self._key(address))
            else:
                addresses.discard(self._key(address))
            self._save()

    def _save(self) -> None:
        if not self.path:
            return
        data = {u: sorted(v) for u, v in self._by_user.items() if v}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)


def of(app) -> ImageSenders:
    senders = getattr(app.state, "image_senders", None)
    if senders is None:
        config = getattr(app.state.services, "config", None)
        data_dir = getattr(config, "data_dir", None)
        path = os.path.join(data_dir, FILE) if data_dir and os.path.isdir(data_dir) else None
        senders = app.state.image_senders = ImageSenders(path)
    return senders
