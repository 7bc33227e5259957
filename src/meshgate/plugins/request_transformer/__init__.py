"""request-transformer: change the request before it is proxied — headers, query string,
JSON/form body, method and URI — with Kong's remove/rename/replace/add/append operations."""
