"""Sending from Posthouse: compose, submit over SMTP, file the sent bytes in Sent."""
