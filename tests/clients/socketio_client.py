"""Drives Switchboard's socketio face (HoloBridge-compatible, docs/socketio.md) with python-socketio's
AsyncClient (aiohttp). Events are injected through the custom (VMSC) face with `websockets` and with
`POST <http-url>events` (aiohttp).

Usage: python socketio_client.py <scenario> <socketio-url> <http-url> <custom-url> <custom-token>
Scenarios: checklist, websocket, refused (for a server with api_keys = []). Prints "ok <step>" lines;
exits non-zero on the first failure.

Ordering: events injected through one custom-face connection are published in the order sent, and a
`POST /events` answers once its event is published. To prove that an event does NOT reach a socket, a
marker event published after it must be the socket's very next event. No sleeps.
"""
import asyncio
import json
import os
import re
import sys
import traceback
import urllib.parse

import aiohttp
import socketio
from websockets.asyncio.client import connect as ws_connect

TIMEOUT = 10
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
INVALID_GUILDS = {"message": "guildIds must be an array of strings", "code": "INVALID_PAYLOAD"}
NO_EVENT = "event must be a non-empty string"
MESSAGE = {
    "id": "1300000000000000001", "channelId": "222", "guildId": "111",
    "author": {"id": "333", "username": "alice", "globalName": "Alice", "bot": False},
    "content": "hello", "createdAt": "2025-11-22T10:00:00.000Z",
}
USER_UPDATE = {"old": None, "new": {"id": "333", "username": "alice"}}
INTERACTION = {
    "id": "1400000000000000001", "type": 2, "guildId": "111", "channelId": "222", "commandName": "ping",
    "user": {"id": "333", "username": "alice"},
}
SEEN = {"last": "(none yet)"}
OPEN: list = []  # every Sio and CustomFace opened, closed at the end whatever happens
ARGS: tuple = ()  # set in main(): (socketio-url, http-url, custom-url, custom-token)


def ok(step: str) -> None:
    SEEN["last"] = step
    print(f"ok {step}", flush=True)


async def within(awaitable, what: str):
    """`awaitable`, or an AssertionError naming `what` after 10 s."""
    try:
        return await asyncio.wait_for(awaitable, TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"nothing within {TIMEOUT} s: {what}") from None


# ---- Socket.IO clients -----------------------------------------------------------------------------
class Sio:
    """An AsyncClient whose every event (reserved ones included) goes to one queue as (event, *args)."""

    def __init__(self, name: str):
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False)
        OPEN.append(self)
        self.events: asyncio.Queue = asyncio.Queue()
        put = self.events.put_nowait
        self.sio.on("connect", lambda: put(("connect",)))
        self.sio.on("connect_error", lambda *args: put(("connect_error", *args)))
        self.sio.on("disconnect", lambda *args: put(("disconnect", *args)))
        self.sio.on("*", lambda event, *args: put((event, *args)))

    async def next(self, what: str) -> tuple:
        return await within(self.events.get(), f"{self.name} waiting for {what}")

    async def expect(self, event: str, payload) -> None:
        """The next event must be `event` with exactly one argument equal to `payload`."""
        item = await self.next(f"{event} {payload!r}")
        assert item == (event, payload), f"{self.name}: expected {event} {payload!r}, got {item!r}"

    async def subscribe(self, guild_ids, answer=None) -> None:
        await self.sio.emit("subscribe", {"guildIds": guild_ids})
        await self.expect("subscribed", {"guildIds": guild_ids if answer is None else answer})

    async def unsubscribe(self, guild_ids) -> None:
        await self.sio.emit("unsubscribe", {"guildIds": guild_ids})
        await self.expect("unsubscribed", {"guildIds": guild_ids})

    async def inject(self, payload):
        """emit("inject", payload) with an acknowledgement callback, waiting at most 10 s."""
        try:
            return await self.sio.call("inject", payload, timeout=TIMEOUT)
        except socketio.exceptions.TimeoutError:
            raise AssertionError(f"{self.name}: no acknowledgement within {TIMEOUT} s for inject {payload!r}") from None

    async def discord(self, event, guild_id, data) -> None:
        await self.expect("discord", {"event": event, "guildId": guild_id, "data": data})

    @property
    def connected(self) -> bool:
        return self.sio.connected

    async def close(self) -> None:
        await self.sio.disconnect()


async def connected(name: str, auth, transports=None) -> Sio:
    client = Sio(name)
    try:
        await client.sio.connect(ARGS[0], auth=auth, transports=transports, wait_timeout=TIMEOUT)
    except socketio.exceptions.ConnectionError as error:
        received = []
        while not client.events.empty():
            received.append(client.events.get_nowait())
        raise AssertionError(f"{name} (auth {auth!r}) not connected: {error}; received {received!r}") from None
    first = await client.next("connect")
    assert first == ("connect",), f"{name}: expected connect, got {first!r}"
    assert client.sio.get_sid(), f"{name}: connected without an id"
    return client


async def refused(auth, message: str) -> None:
    client = Sio("refused")
    try:
        await client.sio.connect(ARGS[0], auth=auth, wait_timeout=TIMEOUT)
    except socketio.exceptions.ConnectionError:
        pass
    else:
        await client.close()
        raise AssertionError(f"auth {auth!r}: connected, expected connect_error {message!r}")
    first = await client.next(f"connect_error {message}")
    assert first == ("connect_error", {"message": message}), \
        f"auth {auth!r}: expected connect_error {message!r}, got {first!r}"
    assert not client.connected, f"auth {auth!r}: connected anyway"


# ---- injection -------------------------------------------------------------------------------------
class CustomFace:
    """A custom-face (VMSC) connection."""

    def __init__(self, name: str, ws):
        self.name, self.ws = name, ws
        OPEN.append(self)

    @classmethod
    async def open(cls, name: str) -> "CustomFace":
        headers = {"Authorization": f"Bearer {ARGS[3]}"}
        ws = await within(ws_connect(ARGS[2], additional_headers=headers), f"{name}: connecting to {ARGS[2]}")
        return cls(name, ws)

    async def send(self, message) -> None:
        await self.ws.send(json.dumps(message))

    async def close(self) -> None:
        await self.ws.close()

    async def next(self, what: str) -> dict:
        return json.loads(await within(self.ws.recv(), f"{self.name} waiting for {what}"))


INJECTOR: list = []


async def inject(event: dict) -> str:
    """injectEvent through the custom face; returns the event id."""
    if not INJECTOR:
        INJECTOR.append(await CustomFace.open("custom-face injector"))
    injector = INJECTOR[0]
    await injector.send({"action": "injectEvent", "event": event})
    ack = await injector.next(f"the injectEvent ack for {event!r}")
    assert ack.get("action") == "injectEvent" and ack.get("status") == "ok" and UUID.match(str(ack.get("eventId"))), \
        f"injectEvent {event!r}: {ack!r}"
    return ack["eventId"]


async def post(event: dict) -> str:
    """POST <http-url>events; it answers once the event is published."""
    url = urllib.parse.urljoin(ARGS[1], "events")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        headers = {"authorization": "Bearer " + os.environ["SWITCHBOARD_TOKEN"]}
        async with session.post(url, json=event, headers=headers) as response:
            status, body = response.status, await response.json(content_type=None)
    assert status == 200 and body.get("status") == "ok" and UUID.match(str(body.get("eventId"))), \
        f"POST events {event!r}: {status} {body!r}"
    return body["eventId"]


def expect_ok_ack(reply, payload) -> str:
    assert isinstance(reply, dict) and reply.get("status") == "ok" and UUID.match(str(reply.get("eventId"))), \
        f"inject {payload!r}: {reply!r}"
    assert sorted(reply) == ["eventId", "status"], f"inject {payload!r}: {reply!r}"
    return reply["eventId"]


# ---- scenarios -------------------------------------------------------------------------------------
async def checklist() -> None:
    a = await connected("A", {"apiKey": "key-1"})
    transport = a.sio.transport()
    assert transport == "websocket", f"A: still on {transport} after connecting (the upgrade failed)"
    ok("connect with key-1 (polling, then upgrade to websocket)")
    c = await connected("C", {"apiKey": "key-2"})
    ok("connect with key-2")
    for auth in (None, {}, {"apiKey": ""}, {"apiKey": None}):
        await refused(auth, "Missing API key")
    ok("missing API key refused")
    for auth in ({"apiKey": "nope"}, {"apiKey": "KEY-1"}, {"apiKey": 12345}):
        await refused(auth, "Invalid API key")
    ok("invalid API key refused")

    await a.subscribe(["111", "", "111", "222"], ["111", "222"])
    await a.subscribe([], [])
    await a.subscribe(["111"], ["111"])  # already joined: listed again
    ok("subscribe")
    await a.unsubscribe(["222", "333", "222", ""])  # answered exactly as sent; A stays in 111
    ok("unsubscribe answers the list as sent")

    b = await connected("B", {"apiKey": "key-1"})
    for data in (
        {"guildIds": "111"},
        {"guildIds": ["111", 5]},  # must not join 111: checked by the routing below
        None,  # no payload at all: 42["subscribe"]
        (None,),  # a null payload: 42["subscribe",null]
        {},
    ):
        await b.sio.emit("subscribe", data)
        await b.expect("error", INVALID_GUILDS)
        assert b.connected, f"B disconnected after subscribe {data!r}"
    await b.sio.emit("unsubscribe", {"guildIds": "222"})
    await b.expect("error", INVALID_GUILDS)
    ok("invalid subscribe payloads answer error INVALID_PAYLOAD")
    await b.subscribe(["222"])
    ok("socket still usable after the errors")

    # A is in 111, B in 222, C in nothing.
    await inject({"source": "Discord", "type": "messageCreate", "room": "111", "data": MESSAGE})
    await a.discord("messageCreate", "111", MESSAGE)
    ok("discord event with a room reaches its guild")
    await inject({"source": "DISCORD", "type": "marker", "room": "222", "data": {"marker": 1}})
    await b.discord("marker", "222", {"marker": 1})  # not the 111 event
    ok("and not a socket in another guild")

    await a.unsubscribe(["111"])
    await inject({"source": "discord", "type": "messageCreate", "room": "111", "data": MESSAGE})
    await inject({"source": "discord", "type": "userUpdate", "data": USER_UPDATE})
    for s in (a, b, c):
        await s.discord("userUpdate", None, USER_UPDATE)
    ok("discord event without a room reaches every socket")
    ok("after unsubscribe the guild event no longer arrives")  # A's (and C's) next event was the one above

    await a.subscribe(["111"])
    await post({"source": "twitch", "type": "messageCreate", "room": "111", "data": {"content": "not discord"}})
    await post({"source": "twitch", "type": "follow", "data": {}})
    await post({"source": "discordbot", "type": "messageCreate", "data": {"content": "not discord either"}})
    await inject({"source": "discord", "type": "marker", "data": {"marker": 2}})
    for s in (a, b, c):
        await s.discord("marker", None, {"marker": 2})
    ok("events from other sources reach no socket")

    await inject({"source": "discord", "type": "interactionCreate", "room": "111", "data": INTERACTION})
    both = sorted([await a.next("discord"), await a.next("interaction:create")], key=lambda item: item[0])
    assert both == [("discord", {"event": "interactionCreate", "guildId": "111", "data": INTERACTION}),
                    ("interaction:create", INTERACTION)], f"A: {both!r}"
    ok("interactionCreate arrives as discord and as interaction:create")
    await inject({"source": "discord", "type": "interactionCreate", "data": INTERACTION})
    await inject({"source": "discord", "type": "marker", "data": {"marker": 3}})
    for s in (a, b, c):
        await s.discord("interactionCreate", None, INTERACTION)  # B and C: not the guild 111 one
        await s.discord("marker", None, {"marker": 3})  # no interaction:create without a room
    ok("interactionCreate without a room is only a discord event")

    watcher = await CustomFace.open("custom-face subscriber")
    await watcher.send({"action": "subscribe", "sources": ["discord"]})
    ack = await watcher.next("the subscribe ack")
    assert ack == {"action": "subscribe", "status": "ok", "eventTypes": [], "sources": ["discord"]}, ack
    hello = {"event": "messageCreate", "guildId": "111", "data": {"content": "hello"}}
    event_id = expect_ok_ack(await a.inject(hello), hello)
    ok('inject answers {status:"ok", eventId} through the ack')
    await a.discord("messageCreate", "111", {"content": "hello"})
    ok("the sender receives the injected event")
    frame = await watcher.next("the injected event")
    event = frame.get("event") or {}
    assert frame.get("action") == "event" and event.get("id") == event_id, f"expected event {event_id}, got {frame!r}"
    got = {key: event.get(key) for key in ("id", "source", "type", "room", "data", "user")}
    assert got == {"id": event_id, "source": "discord", "type": "messageCreate", "room": "111",
                   "data": {"content": "hello"}, "user": {"id": "", "username": "", "nickname": ""}}, frame
    ok("a custom-face subscriber receives the same event id")

    for payload, message in (
        ({"guildId": "111", "data": {"content": "no event"}}, NO_EVENT),
        ({"event": "", "guildId": "111"}, NO_EVENT),
        ({"event": 5, "guildId": "111"}, NO_EVENT),
        ("messageCreate", "inject payload must be an object"),
        ({"event": "messageCreate", "guildId": 111}, "guildId must be a string or null"),
        ({"event": "messageCreate", "guildId": "111", "data": "hello"}, "data must be an object"),
    ):
        reply = await a.inject(payload)
        assert reply == {"status": "error", "code": "INVALID_PAYLOAD", "message": message}, f"inject {payload!r}: {reply!r}"
    ok('invalid inject answers {status:"error", code:"INVALID_PAYLOAD"} through the ack')
    await a.sio.emit("inject", {"guildId": "111", "data": {"content": "no event, no ack"}})
    await a.expect("error", {"message": NO_EVENT, "code": "INVALID_PAYLOAD"})
    ok("invalid inject without an ack answers an error event")

    # A marker from the same socket: published after anything the invalid injects could have put on the bus.
    user_update = {"event": "userUpdate"}
    marker_id = expect_ok_ack(await a.inject(user_update), user_update)
    for s in (a, b, c):
        await s.discord("userUpdate", None, {})  # B: not the guild 111 "hello" either
    ok("inject without a guild reaches every socket")
    frame = await watcher.next("the userUpdate event")
    assert frame.get("action") == "event" and (frame.get("event") or {}).get("id") == marker_id, \
        f"expected event {marker_id}, got {frame!r}"
    ok("invalid injects publish nothing")
    blank = {"event": "presenceUpdate", "guildId": "", "data": None}
    expect_ok_ack(await a.inject(blank), blank)
    for s in (a, b, c):
        await s.discord("presenceUpdate", None, {})
    null_guild = {"event": "presenceUpdate", "guildId": None, "data": {"status": "online"}}
    expect_ok_ack(await a.inject(null_guild), null_guild)
    for s in (a, b, c):
        await s.discord("presenceUpdate", None, {"status": "online"})
    ok("inject with an empty or null guildId and null data")

    for s in (a, b, c):
        assert s.connected, f"{s.name} is no longer connected"
    ok("every socket still connected")
    for s in (a, b, c):
        await s.close()
    await watcher.close()


async def websocket() -> None:
    a = await connected("A", {"apiKey": "key-1"}, transports=["websocket"])
    assert a.sio.transport() == "websocket", f"A: on {a.sio.transport()}"
    ok('connect with transports ["websocket"]')
    await a.subscribe(["111", "", "111"], ["111"])
    ok("subscribe")
    await inject({"source": "Discord", "type": "messageCreate", "room": "111", "data": MESSAGE})
    await a.discord("messageCreate", "111", MESSAGE)
    ok("discord event with a room reaches its guild")
    hello = {"event": "messageCreate", "guildId": "111", "data": {"content": "hello"}}
    expect_ok_ack(await a.inject(hello), hello)
    ok('inject answers {status:"ok", eventId} through the ack')
    await a.discord("messageCreate", "111", {"content": "hello"})
    ok("the sender receives the injected event")
    assert a.connected and a.sio.transport() == "websocket", "A: no longer connected on websocket"
    await a.close()


async def refused_scenario() -> None:
    await refused({"apiKey": "key-1"}, "Invalid API key")
    ok("key-1 refused with Invalid API key")
    await refused(None, "Missing API key")
    ok("no auth refused with Missing API key")


SCENARIOS = {"checklist": checklist, "websocket": websocket, "refused": refused_scenario}


async def main() -> None:
    global ARGS
    if len(sys.argv) != 6 or sys.argv[1] not in SCENARIOS:
        raise SystemExit(__doc__)
    scenario, ARGS = sys.argv[1], tuple(sys.argv[2:6])
    failure = None
    try:
        await SCENARIOS[scenario]()
    except Exception as error:  # noqa: BLE001 - the traceback, then one clear line
        traceback.print_exc()
        failure = f"FAIL {scenario}, after 'ok {SEEN['last']}': {type(error).__name__}: {error}"
    for connection in OPEN:  # idempotent; closes what a failure left open, so nothing leaks into the output
        try:
            await asyncio.wait_for(connection.close(), 2)
        except Exception:  # noqa: BLE001 - best effort
            pass
    if failure:
        raise SystemExit(failure)


asyncio.run(main())
