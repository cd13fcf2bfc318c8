"""Python `websockets` peer for the interop tests (tests/interop_python.rs).

    python peer.py server [--params JSON]     echo server on 127.0.0.1:0; prints LISTENING <port>;
                                              exits when stdin closes
    python peer.py client URL [--params JSON] scripted conversation against an echo server;
                                              prints OK and exits 0 on success

--params holds permessage-deflate parameters (server_no_context_takeover,
client_no_context_takeover, server_max_window_bits, client_max_window_bits); with it the
extension is required, without it compression is off. Messages up to 64 MiB are allowed.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

MAX = 64 << 20


def fail(message):
    print(f"[python-peer] FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


async def run_server(params):
    extensions = [ServerPerMessageDeflateFactory(**params)] if params is not None else []

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(
        echo, "127.0.0.1", 0, extensions=extensions, compression=None, max_size=MAX
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


def compressible(n):
    pattern = b"websocket permessage-deflate interop "
    return (pattern * (n // len(pattern) + 1))[:n]


async def run_client(url, params):
    extensions = []
    if params is not None:
        client_params = dict(params)
        client_params.setdefault("client_max_window_bits", True)
        extensions = [ClientPerMessageDeflateFactory(**client_params)]
    async with connect(url, extensions=extensions, compression=None, max_size=MAX) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if params is not None and "permessage-deflate" not in negotiated:
            fail(f"permessage-deflate not negotiated: {negotiated!r}")
        print(f"[python-peer] negotiated {negotiated!r}", file=sys.stderr, flush=True)
        cases = [
            "hello",
            "héllo wörld ✓ 🎉",
            b"",
            bytes(range(256)),
            compressible(70_000),
            compressible(70_000).decode(),
            compressible(16 << 20),
        ]
        for case in cases:
            await ws.send(case)
            echoed = await asyncio.wait_for(ws.recv(), 30)
            if echoed != case:
                fail(f"echo of a {type(case).__name__} of {len(case)} differs")
        # Many small messages, pipelined.
        small = [f"message {i} " * (i % 7 + 1) for i in range(1000)]
        for m in small:
            await ws.send(m)
        for m in small:
            echoed = await asyncio.wait_for(ws.recv(), 30)
            if echoed != m:
                fail("pipelined small message differs")
        await ws.close(4000, "python done")
    print("OK", flush=True)


def main():
    args = sys.argv[1:]
    params = None
    if "--params" in args:
        i = args.index("--params")
        params = json.loads(args[i + 1])
        del args[i : i + 2]
    if args[:1] == ["server"]:
        asyncio.run(run_server(params))
    elif args[:1] == ["client"] and len(args) == 2:
        asyncio.run(asyncio.wait_for(run_client(args[1], params), 120))
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
