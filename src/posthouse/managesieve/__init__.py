"""ManageSieve (RFC 5804): users manage their Sieve scripts remotely."""
