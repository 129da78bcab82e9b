"""The tokens table on PostgreSQL too (the CRM database may be either): the
tests' private PostgreSQL (tests/pgserver.py)."""
from __future__ import annotations

from datetime import timezone


from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.web.tokens import TokenStore


def test_tokens_on_postgresql(postgres_url, tmp_path):
    engine = make_engine(postgres_url, str(tmp_path))
    try:
        upgrade(engine)
        tokens = TokenStore(engine)
        info, token = tokens.create("pgalice", "on postgres")
        seen = tokens.verify(token)
        assert seen.user == "pgalice" and seen.created_at.tzinfo is not None
        assert tokens.list("pgalice")[-1].last_used_at.astimezone(timezone.utc) >= info.created_at
        assert tokens.verify(token + "x") is None and tokens.verify("") is None
        assert tokens.revoke(info.id).revoked and tokens.verify(token) is None
        assert tokens.revoke(2**31 - 1) is None
    finally:
        engine.dispose()
