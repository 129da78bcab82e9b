"""open_session: a connected, logged-in ImapConnection for an account, by
password, OAuth2 (XOAUTH2 / OAUTHBEARER, refreshing the token) or, for a
local account, the service identity acting as the owner."""
from __future__ import annotations

from ..auth.service_identity import SERVICE_NAME, ServiceIdentity
from ..imap_client import ImapConnection, LoginFailed
from .oauth import access_token, initial_response
from .sasl import plain


async def login(conn: ImapConnection, store, account, secret: dict | None = None) -> None:
    """Log conn in as account; LoginFailed with the server's words if refused,
    OAuthError if no access token can be had, SecretsError if the key is wrong.
    `secret`: for an account not saved yet (the connection test)."""
    if account.auth == "service":
        service_secret = ServiceIdentity(store.data_dir).secret()
        await conn.authenticate("PLAIN", plain(SERVICE_NAME, service_secret, authzid=account.login))
    elif account.auth == "oauth2":
        cached = account.id in store._tokens
        token, settings = await access_token(store, account, secret)
        mechanism, ir = initial_response(settings, account.login, token, account.imap_host, account.imap_port)
        try:
            await conn.authenticate(mechanism, ir)
        except LoginFailed:
            if not cached:
                raise
            # A cached token the provider no longer takes (revoked early): one fresh try.
            store._tokens.pop(account.id, None)
            token, settings = await access_token(store, account)
            mechanism, ir = initial_response(settings, account.login, token, account.imap_host, account.imap_port)
            await conn.authenticate(mechanism, ir)
    else:
        password = (secret if secret is not None else store.secret(account.id)).get("password")
        if password is None:
            raise LoginFailed(None, f"account {account.id} has no password stored")
        await conn.login(account.login, password)


async def open_session(store, account) -> ImapConnection:
    """Connected AND logged in; ImapError (its step says what failed) otherwise."""
    conn = await ImapConnection.open(store.endpoint(account))
    try:
        await login(conn, store, account)
    except BaseException:
        conn.close()
        raise
    return conn
