"""response-transformer: change response headers and top-level JSON body fields with Kong's
remove/rename/replace/add/append operations."""
