from .dovecot import dovecot  # noqa: F401  (the fixture)
