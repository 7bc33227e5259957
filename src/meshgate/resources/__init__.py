"""meshgate.resources: schemas of every resource and the declarative file format.

Kong entities: ``meshgate.resources.kong``; a whole gateway configuration:
``GatewayConfig``; Kong declarative files: ``load_file`` / ``load_text`` / ``load_dict`` and
``dump_dict`` / ``dump_yaml``.
"""

from meshgate.resources.declarative import dump_dict, dump_yaml, load_dict, load_file, load_text
from meshgate.resources.gateway_config import GatewayConfig

__all__ = ["GatewayConfig", "dump_dict", "dump_yaml", "load_dict", "load_file", "load_text"]
