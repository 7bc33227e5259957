"""hmac-auth: authenticate consumers by an HMAC signature of request headers (Kong 3.x)."""
