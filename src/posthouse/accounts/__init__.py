"""Connected mail accounts: their servers, encrypted credentials (passwords,
OAuth2 refresh tokens), the connection test.

`from posthouse.accounts import AccountStore, Account, open_session` works;
the names are imported on first use, so importing the package stays cheap."""

_EXPORTS = {"AccountStore": "store", "Account": "store", "AccountError": "store",
            "open_session": "session", "smtp_auth": "session"}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'posthouse.accounts' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
