"""Large bodies stream through with bounded memory; back-pressure works in both directions."""

from __future__ import annotations

import asyncio
import resource

from engine_kit import (
    Client,
    Seen,
    TestUpstream,
    UpstreamConn,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    run,
)

MB = 1024 * 1024


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_50mb_upload_and_download_stream_through() -> None:
    async def main() -> None:
        def handler(conn: UpstreamConn, seen: Seen) -> None:
            if seen.url == "/download":
                total = 50 * MB
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
                conn.background(conn.stream(total))
            else:
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        up = await TestUpstream(handler=handler).start()
        up.discard_body = True
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            before = _max_rss_mb()
            client = await Client.connect(p.port)
            total = 50 * MB
            await client.send(
                b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total
            )
            piece = b"y" * (256 * 1024)
            for _ in range(total // len(piece)):
                client.writer.write(piece)
                await client.writer.drain()
            assert (await client.response()).status == 200
            assert up.body_bytes == total
            # chunked upload too
            await client.send(
                b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(40):
                client.writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                await client.writer.drain()
            await client.send(b"0\r\n\r\n")
            assert (await client.response()).status == 200
            assert up.body_bytes == total + 40 * len(piece)
            await client.send(get("/download"))
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            received = 0
            while received < total:
                chunk = await client.reader.read(1024 * 1024)
                assert chunk
                received += len(chunk)
            assert received == total
            assert _max_rss_mb() - before < 40  # nothing close to a whole body was buffered

    run(main(), timeout=40)


def test_slow_client_pauses_the_upstream() -> None:
    async def main() -> None:
        total = 64 * MB

        def handler(conn: UpstreamConn, seen: Seen) -> None:
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            conn.background(conn.stream(total))

        up = await TestUpstream(handler=handler).start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(get())
            await asyncio.sleep(0.5)  # the client reads nothing meanwhile
            stalled_at = up.streamed
            assert stalled_at < total // 2  # the upstream could not run ahead of the client
            assert sum(c.pauses for c in up.open) > 0
            received = 0
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert b"200 OK" in head
            while received < total:
                chunk = await client.reader.read(1024 * 1024)
                assert chunk
                received += len(chunk)
            assert received == total

    run(main(), timeout=40)


def test_slow_upstream_pauses_the_client() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        up.discard_body = True

        def stop_reading(conn: UpstreamConn, seen: Seen) -> None:
            assert conn.transport is not None
            conn.transport.pause_reading()
            asyncio.get_running_loop().call_later(0.5, conn.transport.resume_reading)

        up.on_head = stop_reading
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            total = 64 * MB
            await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
            piece = b"z" * (1024 * 1024)
            sent = 0
            started = asyncio.get_running_loop().time()
            stalled = False
            while sent < total:
                client.writer.write(piece)
                sent += len(piece)
                try:
                    await asyncio.wait_for(client.writer.drain(), 0.2)
                except TimeoutError:
                    stalled = True
                    await client.writer.drain()
            assert stalled  # the client's writes backed up while the upstream did not read
            assert asyncio.get_running_loop().time() - started >= 0.4
            resp = await client.response()
            assert resp.status == 200
            assert up.body_bytes == total
            for c in p.engine.clients:
                assert c.current is None or c.current.body_buffered <= p.settings.high_water

    run(main(), timeout=40)
