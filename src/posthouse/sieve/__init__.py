"""Sieve (RFC 5228) mail filtering: sievelib parses, the interpreter is ours."""
