"""Kong entity models, gathered: import them from here.

The models live in ``kong_services`` (Service, Route), ``kong_upstreams`` (Upstream,
Healthchecks, Target), ``kong_consumers`` (Consumer, Plugin) and ``kong_tls`` (Certificate, SNI,
CACertificate); ``kong_common`` holds the shared validators and ``stable_id``.
"""

from meshgate.resources.kong_common import EntityViolations, KongEntity, stable_id
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS, Consumer, Plugin
from meshgate.resources.kong_services import Route, Service
from meshgate.resources.kong_tls import SNI, CACertificate, Certificate
from meshgate.resources.kong_upstreams import Healthchecks, Target, Upstream, parse_target

__all__ = [
    "CREDENTIAL_KINDS",
    "SNI",
    "CACertificate",
    "Certificate",
    "Consumer",
    "EntityViolations",
    "Healthchecks",
    "KongEntity",
    "Plugin",
    "Route",
    "Service",
    "Target",
    "Upstream",
    "parse_target",
    "stable_id",
]
