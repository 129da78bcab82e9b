"""Moving mail in and out of the store: mbox files and Maildir trees in
(`posthouse import`), Maildir out (`posthouse export`)."""
