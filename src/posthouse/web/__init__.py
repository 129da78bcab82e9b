"""HTTP: the REST API under /api/v1 (OpenAPI), later the web app."""
