"""acl: allow or deny authenticated consumers by the groups they belong to."""
