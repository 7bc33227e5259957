"""jwt: authenticate consumers by a signed JSON Web Token (HS*, RS*, ES*, PS*, EdDSA)."""
