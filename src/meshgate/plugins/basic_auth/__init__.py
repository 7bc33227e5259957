"""basic-auth: authenticate consumers by a username and password (HTTP Basic)."""
