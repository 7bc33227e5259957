"""The control plane: the Kong-compatible Admin API (``admin_api``); mesh API, CA,
distribution and zones come later."""
