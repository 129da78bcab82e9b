"""The /api/v1 routers, one module per kind of thing."""
