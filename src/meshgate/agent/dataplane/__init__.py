"""The sidecar data plane: connect to a control plane, run its snapshots, cache them.

``client.DataplaneAgent`` is the agent, ``state.StateDir`` its on-disk state, ``protocol``
the wire protocol shared with ``meshgate.controlplane.distribution``.
"""
