"""An AsyncAPI 3.0 document of the event routes a snapshot configures.

Every enabled ``kafka-upstream``/``kafka-rest`` instance is a ``send`` operation, every
``kafka-consume`` a ``receive`` and ``kafka-log`` a ``send`` of access logs; each on the
channel of its topic (``address`` = topic, Kafka channel binding). A ``kafka-rest`` instance
without ``allowed_topics`` writes any topic: its channel is ``{topic}`` with a parameter.
The HTTP side (routes, paths, methods, delivery mode) is in the ``x-meshgate-http`` extension
of each operation. Servers: the snapshot's HTTP listeners, and each Kafka cluster named.
"""

from __future__ import annotations

import re
from typing import Any

from meshgate.snapshot import PluginInstance, Route, Snapshot

EVENT_PLUGINS = ("kafka-upstream", "kafka-rest", "kafka-consume", "kafka-log")
_KEY = re.compile(r"[^A-Za-z0-9_.\-]")

_RECORD_MESSAGE: dict[str, Any] = {
    "name": "record",
    "title": "A record as read over HTTP",
    "contentType": "application/json",
    "payload": {
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "timestamp": {"type": "integer", "description": "epoch milliseconds"},
            "key": {"type": ["string", "null"]},
            "key_encoding": {"enum": ["string", "base64", None]},
            "value": {},
            "value_encoding": {"enum": ["json", "string", "base64", None]},
            "headers": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "value": {"type": "string", "contentEncoding": "base64"},
            }}},
        },
    },
}  # fmt: skip


def _key(text: str) -> str:
    return _KEY.sub("_", text)


def _routes_of(plugin: PluginInstance, snap: Snapshot) -> list[Route]:
    if plugin.route is not None:
        return [r for r in snap.routes if r.id == plugin.route]
    if plugin.service is not None:
        return [r for r in snap.routes if r.service == plugin.service]
    return list(snap.routes)


def _topics(plugin: PluginInstance) -> list[str]:
    config = plugin.config
    if plugin.name == "kafka-consume":
        return [t["name"] for t in config.get("topics", []) if isinstance(t, dict) and "name" in t]
    if plugin.name == "kafka-rest":
        allowed = config.get("allowed_topics")
        return list(allowed) if allowed is not None else ["{topic}"]
    topics = [config["topic"]] if isinstance(config.get("topic"), str) else []
    return topics + [t for t in config.get("allowed_topics") or () if t not in topics]


def _server_of(plugin: PluginInstance) -> tuple[str, dict[str, Any]]:
    config = plugin.config
    if config.get("backend") == "kafka":
        brokers = ",".join(
            f"{s['host']}:{s['port']}" for s in config.get("bootstrap_servers") or ()
        )
        return f"kafka-{_key(brokers)}", {"host": brokers, "protocol": "kafka",
                                          "description": "Apache Kafka"}  # fmt: skip
    return "embedded", {"host": "localhost", "protocol": "meshgate-embedded",
                        "description": "meshgate's embedded event log"}  # fmt: skip


def _channel(topic: str, server: str) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": topic,
        "servers": [{"$ref": f"#/servers/{server}"}],
        "messages": {"record": {"$ref": "#/components/messages/record"}},
        "bindings": {"kafka": {"bindingVersion": "0.5.0"}},
    }
    if topic == "{topic}":
        channel["parameters"] = {"topic": {"description": "Any topic name."}}
    else:
        channel["bindings"]["kafka"]["topic"] = topic
    return channel


def _http_side(plugin: PluginInstance, snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for route in _routes_of(plugin, snap):
        entry: dict[str, Any] = {"route": route.name or route.id, "paths": list(route.paths)}
        entry["methods"] = list(route.methods) or ["*"]
        if route.hosts:
            entry["hosts"] = list(route.hosts)
        out.append(entry)
    return out


def asyncapi_document(snap: Snapshot) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for listener in snap.listeners:
        if listener.protocol in ("http", "https"):
            servers[_key(f"gateway-{listener.name}")] = {
                "host": f"{listener.address}:{listener.port}",
                "protocol": listener.protocol,
                "description": f"meshgate listener {listener.name}",
            }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for plugin in snap.plugins:
        if plugin.name not in EVENT_PLUGINS or not plugin.enabled:
            continue
        server_name, server = _server_of(plugin)
        servers.setdefault(server_name, server)
        action = "receive" if plugin.name == "kafka-consume" else "send"
        for topic in _topics(plugin):
            channel_key = _key("any-topic" if topic == "{topic}" else topic)
            if server_name != "embedded":
                channel_key = f"{channel_key}.{server_name}"
            channels.setdefault(channel_key, _channel(topic, server_name))
            operation: dict[str, Any] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_key}"},
                "summary": f"{plugin.name} ({plugin.instance_name or plugin.id})",
                "x-meshgate-http": {"plugin": plugin.name, "routes": _http_side(plugin, snap)},
            }
            if plugin.name == "kafka-consume":
                operation["x-meshgate-http"]["mode"] = plugin.config.get("mode", "http-get")
            operations[_key(f"{plugin.name}-{plugin.id}-{topic}")] = operation
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "meshgate event gateway",
            "version": snap.version or "0",
            "description": "Topics reachable over HTTP through this gateway.",
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"messages": {"record": _RECORD_MESSAGE}},
    }
