"""Drives Switchboard's custom (VMSC) face with the `websockets` library.

Usage: python custom_client.py <scenario> <ws-url> <token> [max-connections | ca-file]
Scenarios: auth, cap, rate, tls (a wss:// URL; ca-file: the PEM file of the CA to trust). Prints "ok <step>" lines; exits non-zero on the first failure.
"""
import asyncio
import json
import ssl
import sys

import websockets

TIMEOUT = 10


async def closed_with(ws) -> tuple:
    """Reads frames until the server closes; returns (frames, close code, reason)."""
    frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    except websockets.ConnectionClosed as closed:
        return frames, closed.rcvd.code, closed.rcvd.reason


async def subscribed(ws) -> None:
    await ws.send(json.dumps({"action": "subscribe"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply == {"action": "subscribe", "status": "ok", "eventTypes": [], "sources": []}, reply


def bearer(token: str) -> dict:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def auth(url: str, token: str) -> None:
    async with websockets.connect(url, **bearer(token)) as ws:
        await subscribed(ws)
    print("ok header", flush=True)
    async with websockets.connect(f"{url}?token={token}") as ws:
        await subscribed(ws)
    print("ok query", flush=True)
    for name, target, options in [
        ("missing", url, {}),
        ("wrong", f"{url}?token=nope", {}),
        ("empty", f"{url}?token=", {}),
        ("wrong bearer wins over a right query", f"{url}?token={token}", bearer("nope")),
    ]:
        async with websockets.connect(target, **options) as ws:
            frames, code, reason = await closed_with(ws)
        assert frames == [{"action": "error", "code": "AUTH_FAILED", "message": "Invalid or missing token"}], frames
        assert (code, reason) == (4401, "Unauthorized"), (code, reason)
        print(f"ok {name}", flush=True)


async def cap(url: str, token: str, limit: int) -> None:
    open_connections = []
    for _ in range(limit):
        ws = await websockets.connect(url, **bearer(token))
        await subscribed(ws)
        open_connections.append(ws)
    async with websockets.connect(url, **bearer(token)) as ws:
        frames, code, reason = await closed_with(ws)
    assert frames == [] and (code, reason) == (1013, "Max connections reached"), (frames, code, reason)
    print("ok over the cap", flush=True)
    async with websockets.connect(url, **bearer("nope")) as ws:
        _, code, _ = await closed_with(ws)
    assert code == 4401, code
    print("ok wrong token at the cap", flush=True)
    await open_connections.pop().close()
    # The slot is released when the server has seen the close: retry until a connection is accepted.
    for _ in range(50):
        ws = await websockets.connect(url, **bearer(token))
        try:
            await subscribed(ws)
            break
        except (websockets.ConnectionClosed, AssertionError):
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("no slot was released")
    print("ok a slot frees up", flush=True)
    for ws in open_connections + [ws]:
        await ws.close()


async def rate(url: str, token: str) -> None:
    async with websockets.connect(url, **bearer(token)) as ws:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(100):
            await ws.send(json.dumps({"action": "subscribe", "eventTypes": ["x"]}))
        sent_in = loop.time() - started
        replies = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(100)]
        elapsed = loop.time() - started
        limited = [r for r in replies if r.get("code") == "RATE_LIMITED"]
        processed = [r for r in replies if r.get("status") == "ok"]
        assert sent_in < 1.0, sent_in
        assert limited, "no RATE_LIMITED"
        assert limited[0]["message"] == "Rate limit exceeded: 60 messages per second", limited[0]
        assert len(processed) <= 60 + 60 * elapsed + 1, (len(processed), elapsed)
        print(f"ok rate limited ({len(processed)} processed, {len(limited)} refused)", flush=True)
        # The bucket refills at 60/s: a second later the connection answers normally.
        await asyncio.sleep(1.0)
        await subscribed(ws)
        print("ok still usable", flush=True)


async def tls(url: str, token: str, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    async with websockets.connect(url, ssl=context, **bearer(token)) as ws:
        await subscribed(ws)
        print("ok subscribe over TLS", flush=True)
        event = {"type": "boss_defeated", "source": "mygame", "data": {"boss": "Dragon"}}
        await ws.send(json.dumps({"action": "injectEvent", "event": event}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert ack["action"] == "injectEvent" and ack["status"] == "ok", ack
        own = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert own["action"] == "event" and own["event"]["id"] == ack["eventId"], own
        assert own["event"]["data"] == {"boss": "Dragon"}, own
        print("ok injectEvent over TLS", flush=True)


async def main() -> None:
    scenario, url, token = sys.argv[1:4]
    if scenario == "auth":
        await auth(url, token)
    elif scenario == "cap":
        await cap(url, token, int(sys.argv[4]))
    elif scenario == "rate":
        await rate(url, token)
    elif scenario == "tls":
        await tls(url, token, sys.argv[4])
    else:
        raise SystemExit(f"unknown scenario {scenario}")


asyncio.run(main())
