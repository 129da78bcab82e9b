"""OAuth2 access tokens for XOAUTH2/OAUTHBEARER logins: refreshed from the
account's refresh token with authlib, cached until they expire.

Where a provider's settings come from, first found wins:
  1. the account's encrypted secret: client_id, client_secret, token_endpoint
     (given to `posthouse account add --client-id/--client-secret/--token-endpoint`);
  2. data_dir/oauth2.toml, a table per provider name:
        [google]
        client_id = "..."
        client_secret = "..."
     (token_endpoint, scope and mechanism may be set there too, for any provider);
  3. the presets below (endpoints, scopes, mechanism) for "google" and "microsoft"."""
from __future__ import annotations

import os
import time
import tomllib
import warnings

PRESETS = {
    "google": {
        "token_endpoint": "https://oauth2.googleapis.com/token",
        "scope": "https://mail.google.com/",
        "mechanism": "XOAUTH2",
    },
    "microsoft": {
        "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access",
        "mechanism": "XOAUTH2",
    },
}
CONFIG_FILE = "oauth2.toml"
MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
EXPIRY_MARGIN = 60      # seconds: refresh a little before the provider says it expires


class OAuthError(Exception):
    """No usable settings, or the token endpoint refused (the provider's words);
    safe to show. `permanent`: retrying won't help until the user acts."""

    def __init__(self, text: str, permanent: bool = True):
        super().__init__(text)
        self.permanent = permanent


def provider_settings(data_dir: str, provider: str, secret: dict | None = None) -> dict:
    """token_endpoint, client_id, client_secret, scope, mechanism for provider."""
    settings = dict(PRESETS.get(provider, {}))
    path = os.path.join(data_dir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f).get(provider, {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise OAuthError(f"can't read {path}: {e}") from None
        if not isinstance(table, dict):
            raise OAuthError(f"{path}: [{provider}] must be a table")
        settings.update({k: v for k, v in table.items() if isinstance(v, str)})
    for key in ("token_endpoint", "client_id", "client_secret", "scope", "mechanism"):
        if secret and secret.get(key):
            settings[key] = secret[key]
    if not settings.get("token_endpoint"):
        raise OAuthError(f"OAuth2 provider {provider!r} has no token endpoint: it is not a preset "
                         f"({', '.join(PRESETS)}); give --token-endpoint or set it in {path}")
    if not settings.get("client_id"):
        raise OAuthError(f"OAuth2 provider {provider!r} needs a client_id: give --client-id or set it "
                         f"under [{provider}] in {path}")
    settings["mechanism"] = settings.get("mechanism", "XOAUTH2").upper()
    if settings["mechanism"] not in MECHANISMS:
        raise OAuthError(f"OAuth2 mechanism must be one of {', '.join(MECHANISMS)}, not {settings['mechanism']!r}")
    from authlib.common.security import is_secure_transport
    if not is_secure_transport(settings["token_endpoint"]):
        raise OAuthError(f"the token endpoint {settings['token_endpoint']} must be https (or http on loopback)")
    return settings


def _client_class():
    import authlib.deprecate    # (its import sets an "always" filter, which would win over ours)
    with warnings.catch_warnings():     # authlib 1.9 prefers httpx2 and warns on httpx, which works
        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


async def refresh(settings: dict, refresh_token: str, timeout: float = 30.0) -> dict:
    """POST grant_type=refresh_token to the token endpoint -> the token dict
    (access_token, expires_in, maybe a new refresh_token)."""
    client = _client_class()(client_id=settings["client_id"], client_secret=settings.get("client_secret"),
                             scope=settings.get("scope"), timeout=timeout,
                             token_endpoint_auth_method="client_secret_post" if settings.get("client_secret")
                             else "none")
    try:
        async with client:
            token = await client.refresh_token(settings["token_endpoint"], refresh_token=refresh_token)
    except Exception as e:      # authlib's OAuthError, httpx's errors, a garbled answer
        description = getattr(e, "description", None)
        error = getattr(e, "error", None)
        if error:
            # invalid_grant (revoked, expired), invalid_client: the user must act
            raise OAuthError(f"the token endpoint refused the refresh token: {error}"
                             + (f" ({description})" if description else ""),
                             permanent=error in ("invalid_grant", "invalid_client", "unauthorized_client")) from None
        raise OAuthError(f"can't refresh the access token at {settings['token_endpoint']}: {e}",
                         permanent=False) from None
    token = dict(token)
    if not token.get("access_token"):
        raise OAuthError(f"the token endpoint {settings['token_endpoint']} answered without an access_token",
                         permanent=False)
    return token


async def access_token(store, account, secret: dict | None = None) -> tuple[str, dict]:
    """A valid access token for account (cached until it expires, else
    refreshed; a rotated refresh token is stored) and the provider settings.
    An account not saved yet (id None) brings its secret, which a rotated
    refresh token updates in place."""
    saved = account.id is not None
    if secret is None:
        secret = store.secret(account.id)
    settings = provider_settings(store.data_dir, account.oauth_provider or "", secret)
    cached = store._tokens.get(account.id) if saved else None
    if cached and cached[1] > time.time():
        return cached[0], settings
    if not secret.get("refresh_token"):
        raise OAuthError(f"account {account.id} has no refresh token; add it again with --refresh-token-stdin")
    token = await refresh(settings, secret["refresh_token"])
    if token.get("refresh_token") and token["refresh_token"] != secret["refresh_token"]:
        secret["refresh_token"] = token["refresh_token"]
        if saved:
            store.set_secret(account.id, secret)
    if not saved:
        return token["access_token"], settings
    expires_in = token.get("expires_in")
    try:
        expires_at = time.time() + float(expires_in) - EXPIRY_MARGIN
    except (TypeError, ValueError):
        expires_at = float(token.get("expires_at") or 0) - EXPIRY_MARGIN
    store._tokens[account.id] = (token["access_token"], expires_at)
    return token["access_token"], settings


def initial_response(settings: dict, login: str, token: str, host: str, port: int) -> tuple[str, bytes]:
    """(mechanism, SASL initial response) for an IMAP login."""
    from .sasl import oauthbearer, xoauth2
    if settings["mechanism"] == "OAUTHBEARER":
        return "OAUTHBEARER", oauthbearer(login, token, host, port)
    return "XOAUTH2", xoauth2(login, token)
