"""key-auth: authenticate consumers by an API key in a header, query argument or body field."""
