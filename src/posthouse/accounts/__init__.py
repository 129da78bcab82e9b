"""Connected mail accounts: their servers, encrypted credentials (passwords,
OAuth2 refresh tokens), the connection test."""
