"""The sidecar data plane: connect to a control plane, run its snapshots, cache them.

``client.DataplaneAgent`` is the agent, ``state.StateDir`` its on-disk state (``keys`` makes
its key and CSR), ``protocol`` the wire protocol shared with
``meshgate.controlplane.distribution``; ``launch`` hands ``meshgate dp`` over to the serving
process, ``serve``.
"""
