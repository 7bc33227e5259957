"""The HTTP side of the event gateway: codecs (cursor, REST bodies, CloudEvents, SSE, WebSocket
frames), the produce/consume logic the ``kafka-*`` plugins share, and the AsyncAPI document.

Codecs are sans-io; the plugins in ``meshgate.plugins.kafka_*`` wire them to requests.
"""
