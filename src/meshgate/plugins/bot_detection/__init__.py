"""bot-detection: refuse requests from known bots and from User-Agents you deny (Kong's)."""
