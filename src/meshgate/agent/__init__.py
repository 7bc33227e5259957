"""A data-plane process: receives snapshots (from a supervisor or a control plane) and runs the proxy."""
