"""The TCP (L4) proxy: ``tcp`` listeners bridging each connection to an upstream.

``listener.start_tcp_listener`` starts one; ``proxy`` holds the connection protocols and
the per-process ``TcpEngine``.  (Nothing is imported here: ``http.serve`` imports
``tcp.proxy`` while ``tcp.listener`` imports ``http.serve``.)
"""
