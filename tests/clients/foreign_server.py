"""A foreign WebSocket server with its own JSON shape, for Switchboard's outbound connections.

Usage: python foreign_server.py <port> [<cert.pem> <key.pem>]   (port 0: pick one; with the
certificate and key files, it serves wss://)
Prints "listening <port>", then "connected path=<path> auth=<Authorization header>" per client
"received <text>" per frame from a client and "closed <code>" when it goes. Commands on stdin: "send" sends every client
the test messages; "quit" stops.
"""
import asyncio
import json
import ssl
import sys

import websockets

MESSAGES = [
    json.dumps({"kind": "chat", "channel": "channel-1", "player": {"id": 7, "name": "bob", "hp": 42}, "text": "hi"}),
    "this is not JSON",
    b"\x01\x02\x03",
    json.dumps({"text": "no kind"}),
]


async def main(port: int, tls: list) -> None:
    clients = set()

    async def handler(ws):
        auth = ws.request.headers.get("Authorization", "")
        print(f"connected path={ws.request.path} auth={auth}", flush=True)
        clients.add(ws)
        try:
            async for message in ws:
                print(f"received {message}", flush=True)
        except websockets.ConnectionClosed:
            pass
        finally:
            clients.discard(ws)
            print(f"closed {ws.close_code}", flush=True)

    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    async with websockets.serve(handler, "127.0.0.1", port, reuse_address=True, ssl=context) as server:
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = line.decode().strip()
            if command == "send":
                for ws in list(clients):
                    for message in MESSAGES:
                        await ws.send(message)
                print("sent", flush=True)
            elif command == "quit":
                break


asyncio.run(main(int(sys.argv[1]), sys.argv[2:4]))
