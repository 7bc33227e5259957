"""oauth2-introspection: authenticate bearer tokens with an OAuth 2.0 introspection endpoint."""
