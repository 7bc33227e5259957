"""Load balancing of a cluster's targets: algorithms, passive/active health checks, DNS targets.

The HTTP engine uses ``Balancer`` (one per cluster per snapshot), the ``Target`` objects it
returns from ``pick``, and implements ``PickRequest`` on its request object.
"""

from meshgate.proxy.balancer.balancer import Balancer, Outcome
from meshgate.proxy.balancer.target import PickRequest, Target

__all__ = ["Balancer", "Outcome", "PickRequest", "Target"]
