"""Drives Switchboard's astro face (the StreamElements Astro protocol) as a widget would: plain
WebSocket + JSON with the `websockets` library, events injected with `POST <http-url>events`.

Usage: python astro_client.py <scenario> <astro-url> <http-url> [token]
Scenarios: checklist, shutdown, restore <token>. Prints "ok <step>" lines; exits non-zero on the
first failure.
"""
import asyncio
import itertools
import json
import os
import re
import sys
import traceback
import urllib.parse
import urllib.request
from datetime import datetime
from types import SimpleNamespace

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10
ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
WELCOME = "You are in a maze of dank memes, all alike."
SUBSCRIBED, UNSUBSCRIBED = "successfully subscribed to topic", "successfully unsubscribed from topic"
OWNER, OVERLAY, ROOM2 = "owner-secret", "overlay-secret", "room2-secret"
TOPICS = """channel.activities channel.tips channel.tips.moderation channel.chat.message
channel.session.update channel.session.reset channel.stream.status channel.overlay.action
channel.overlay.broadcast channel.overlay.update channel.songrequest channel.contests channel.giveaways
channel.chatbot.status channel.chatbot.modules channel.chatbot.modules.pyramid
channel.chatbot.modules.emotecombo channel.chatbot.commands channel.chatbot.timers channel.chatbot.filters
channel.chatbot.counters channel.announcements channel.chatstats channel.kvstore.update
channel.loyalty.redemptions channel.loyalty.items""".split()
assert len(TOPICS) == 26
NONCES = itertools.count(1)
SEEN = {"notifications": 0, "last": "(none yet)"}


def ok(step: str) -> None:
    SEEN["last"] = step
    print(f"ok {step}", flush=True)


def check_envelope(frame, ids: set) -> dict:
    """Section 3: every server message; notifications also carry a known topic and a room. `ids` are those
    seen on the connection (one notification is the same bytes for every subscriber, so only per connection)."""
    assert isinstance(frame, dict), f"not a JSON object: {frame!r}"
    assert frame.get("type") in ("welcome", "response", "message", "reconnect"), f"bad type: {frame}"
    assert isinstance(frame.get("id"), str) and ULID.match(frame["id"]), f"id is not a ULID: {frame}"
    assert frame["id"] not in ids, f"id reused: {frame}"
    ids.add(frame["id"])
    ts = frame.get("ts")
    assert isinstance(ts, str) and TS.match(ts), f"ts is not RFC 3339 UTC to the second: {frame}"
    datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    assert "data" in frame, f"no data: {frame}"
    if frame["type"] != "response":
        assert "nonce" not in frame and "error" not in frame, f"nonce/error outside a response: {frame}"
    if frame["type"] == "message":
        assert frame.get("topic") in TOPICS, f"unknown topic: {frame}"
        assert isinstance(frame.get("room"), str) and frame["room"], f"no room: {frame}"
        SEEN["notifications"] += 1
    return frame


def sub(topic, token, room=None, token_type="apikey", nonce=None) -> dict:
    data = {"topic": topic, "token": token, "token_type": token_type}
    if room is not None:
        data["room"] = room
    return {"type": "subscribe", "nonce": nonce or f"sub-{next(NONCES)}", "data": data}


def expect_response(frame, nonce, message, topic, room) -> None:
    assert frame["type"] == "response" and "error" not in frame, f"expected a success, got {frame}"
    assert frame.get("nonce") == nonce, f"nonce {nonce!r} not echoed: {frame}"
    assert frame["data"] == {"message": message, "topic": topic, "room": room}, frame


class Client:
    def __init__(self, ws):
        self.ws, self.ids = ws, set()

    async def event(self, timeout=TIMEOUT):
        """The next frame, or ("close", code, reason) once the server has closed."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            raise AssertionError(f"nothing received within {timeout} s") from None
        except ConnectionClosed as closed:
            return ("close", closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else ("close", None, None)
        assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
        return check_envelope(json.loads(raw), self.ids)

    async def next(self, timeout=TIMEOUT) -> dict:
        frame = await self.event(timeout)
        assert not isinstance(frame, tuple), f"connection closed {frame[1:]}"
        return frame

    async def send(self, message) -> None:
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def request(self, message) -> dict:
        await self.send(message)
        return await self.next()

    async def subscribe(self, topic, token, room=None, token_type="apikey", canonical="channel-1"):
        request = sub(topic, token, room, token_type)
        expect_response(await self.request(request), request["nonce"], SUBSCRIBED, topic, canonical)

    async def unsubscribe(self, topic, room=None):
        nonce = f"unsub-{next(NONCES)}"
        data = {"topic": topic} if room is None else {"topic": topic, "room": room}
        reply = await self.request({"type": "unsubscribe", "nonce": nonce, "data": data})
        expect_response(reply, nonce, UNSUBSCRIBED, topic, room or "")

    async def alive(self):
        """The connection still answers (an unsubscribe from a pair nobody holds always succeeds)."""
        await self.unsubscribe("channel.giveaways", "nowhere")

    async def refused(self, message, error, text):
        """Sends `message`, expects the error response, then checks the connection is still open."""
        reply = await self.request(message)
        nonce = message.get("nonce") if isinstance(message, dict) else None
        assert reply["type"] == "response" and reply.get("error") == error, f"{message!r}: expected {error}, got {reply}"
        assert reply["data"].get("message") == text, f"{message!r}: expected {text!r}, got {reply}"
        if isinstance(nonce, str):
            assert reply.get("nonce") == nonce, f"nonce not echoed: {reply}"
        else:
            assert "nonce" not in reply, f"unexpected nonce: {reply}"
        await self.alive()

    async def notification(self, topic, room) -> dict:
        frame = await self.next()
        assert (frame["type"], frame.get("topic"), frame.get("room")) == ("message", topic, room), \
            f"expected a {topic} notification for {room}, got {frame}"
        return frame


async def connect(url) -> Client:
    # A browser widget sends no pings of its own; neither does this client.
    return Client(await ws_connect(url, ping_interval=None, open_timeout=TIMEOUT))


async def welcomed(url) -> tuple:
    client = await connect(url)
    frame = await client.next()
    assert frame["type"] == "welcome" and set(frame) == {"id", "ts", "type", "data"}, f"not a welcome: {frame}"
    assert frame["data"].get("message") == WELCOME, frame
    assert ULID.match(str(frame["data"].get("client_id"))), f"client_id is not a ULID: {frame}"
    return client, frame


def post_event(http_url, event) -> str:
    request = urllib.request.Request(urllib.parse.urljoin(http_url, "events"), data=json.dumps(event).encode(),
                                     headers={"content-type": "application/json", "authorization": "Bearer " + os.environ["SWITCHBOARD_TOKEN"]}, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 200, response.status
        body = json.load(response)
    assert body.get("status") == "ok" and UUID.match(str(body.get("eventId"))), body
    return body["eventId"]


async def inject(http_url, event) -> str:
    return await asyncio.to_thread(post_event, http_url, event)


def follow(room) -> dict:
    event = {"source": "twitch", "type": "follow", "user": {"id": "12345", "username": "alice", "nickname": "Alice"},
             "data": {}}
    return event if room is None else {**event, "room": room}


DONATION = {"source": "streamlabs", "type": "donation", "user": {"id": "", "username": "bob", "nickname": "Bob"},
            "room": "channel-1", "data": {"amount": 5, "currency": "USD", "message": "Great stream!"}}


async def expect_follow(client, room, event_id) -> dict:
    frame = await client.notification("channel.activities", room)
    assert frame["data"].get("_id") == event_id, f"another notification came first: {frame}"
    return frame


async def expect_donation(client, event_id) -> None:
    frames = {}
    for _ in range(2):
        frame = await client.next()
        assert frame["type"] == "message" and frame["room"] == "channel-1", frame
        frames[frame["topic"]] = frame["data"]
    assert set(frames) == {"channel.activities", "channel.tips"}, frames
    activity, tip = frames["channel.activities"], frames["channel.tips"]
    at = activity.get("createdAt")
    assert isinstance(at, str) and MS.match(at), activity
    assert activity == {"_id": event_id, "channel": "channel-1", "type": "tip", "provider": "streamlabs",
                        "createdAt": at, "updatedAt": at, "data": {**DONATION["data"], "username": "bob",
                                                                   "displayName": "Bob"}}, activity
    assert tip == {"_id": event_id, "channel": "channel-1", "provider": "streamlabs", "approved": "allowed",
                   "status": "success", "createdAt": at, "updatedAt": at, "transactionId": event_id,
                   "donation": {"user": {"username": "bob"}, "message": "Great stream!", "amount": 5,
                                "currency": "USD"}}, tip


async def quiet(c) -> None:
    """Marker: a fresh follow in each room must be the very next frame of its subscriber."""
    one, two = await inject(c.http, follow("channel-1")), await inject(c.http, follow("channel-2"))
    await expect_follow(c.a, "channel-1", one)
    await expect_follow(c.b, "channel-2", two)


# ---- checklist -------------------------------------------------------------------------------------
async def subscribing(c):
    (first, one), (second, two) = await welcomed(c.url), await welcomed(c.url)
    assert one["data"]["client_id"] != two["data"]["client_id"], "client_id is not fresh"
    await first.ws.close()
    await second.ws.close()
    ok("welcome")

    ws, _ = await welcomed(c.url)
    await ws.subscribe("channel.activities", OWNER, "")
    await ws.subscribe("channel.tips", OWNER)  # no room at all: the default ""
    await ws.subscribe("channel.tips", OVERLAY, "")
    await ws.subscribe("channel.activities", ROOM2, "", canonical="channel-2")
    ok("subscribe with an empty room")
    await ws.subscribe("channel.activities", OWNER, "channel-1")  # the same pair again: still a success
    await ws.subscribe("channel.activities", ROOM2, "channel-2", canonical="channel-2")
    ok("subscribe with the token's room")

    for token_type in ("jwt", "oauth2", "apikey", "oauth"):
        await ws.subscribe("channel.activities", OWNER, "channel-1", token_type)
    await ws.refused(sub("channel.activities", OWNER, "channel-1", "basic"), "err_bad_request", "invalid token_type")
    ok("token types")

    for request, text in [
        (sub("channel.activities", "nope", "channel-1"), "invalid token"),
        (sub("channel.activities", OWNER, "channel-2"), "token is not valid for room 'channel-2'"),
        (sub("channel.activities", OWNER, "Channel-1"), "token is not valid for room 'Channel-1'"),
        (sub("channel.activities", "room3-secret", "channel-1"), "token is not valid for room 'channel-1'"),
        (sub("channel.chat.message", OVERLAY, "channel-1"), "missing scope 'overlays:read'"),
        (sub("channel.tips.moderation", OVERLAY, ""), "missing scope 'tips:moderation'"),
    ]:
        await ws.refused(request, "err_unauthorized", text)
    ok("unauthorized")
    await ws.ws.close()

    ws, _ = await welcomed(c.url)
    for topic in TOPICS:
        await ws.subscribe(topic, OWNER, "channel-1")
    ok("every topic with a star token")
    for topic in ("channel.contests", "channel.giveaways", "channel.chatbot.counters", "channel.chatstats"):
        await ws.subscribe(topic, OVERLAY, "")
    await ws.refused(sub("channel.contests", "nope", ""), "err_unauthorized", "invalid token")
    ok("contests needs only a valid token")
    await ws.ws.close()


async def malformed(c):
    ws, _ = await welcomed(c.url)
    for request in [{"type": "publish", "nonce": "t-publish", "data": {"topic": "channel.activities", "room": "channel-1"}},
                    {"type": "ping", "nonce": "t-ping"},
                    {"nonce": "t-none", "data": sub("channel.activities", OWNER, "channel-1")["data"]},
                    {"type": "ping", "nonce": 7}]:  # a non-string nonce is not echoed
        await ws.refused(request, "invalid_message_type", "invalid message type")
    ok("invalid message type")

    base = {"room": "channel-1", "token": OWNER, "token_type": "apikey"}
    for request, text in [
        ({"type": "subscribe", "nonce": "b-topic", "data": {**base, "topic": "channel.nope"}}, "invalid topic"),
        ({"type": "subscribe", "nonce": "b-case", "data": {**base, "topic": "Channel.Activities"}}, "invalid topic"),
        ({"type": "unsubscribe", "nonce": "b-unsub", "data": {"topic": "channel.nope"}}, "invalid topic"),
        ({"type": "subscribe", "nonce": "b-missing", "data": base}, "missing topic"),
        ({"type": "subscribe", "nonce": "b-empty", "data": {**base, "topic": ""}}, "missing topic"),
        ({"type": "subscribe", "nonce": "b-data"}, "missing data"),
        ({"type": "subscribe", "nonce": "b-room", "data": {**base, "topic": "channel.tips", "room": 5}}, "room must be a string"),
        ({"type": "subscribe", "nonce": "b-token", "data": {"topic": "channel.tips", "token_type": "apikey"}}, "missing token"),
        ("hello", "invalid JSON"),
        ("[1, 2]", "message must be a JSON object"),
    ]:
        await ws.refused(request, "err_bad_request", text)
    ok("bad requests")
    await ws.ws.close()


async def limits(c):
    ws, _ = await welcomed(c.url)
    rooms = [(OWNER, "channel-1"), (ROOM2, "channel-2"), ("room3-secret", "channel-3"), ("room4-secret", "channel-4")]
    pairs = [(topic, token, room) for token, room in rooms for topic in TOPICS]
    for topic, token, room in pairs[:100]:  # one at a time: the 100 tokens of the full bucket
        await ws.subscribe(topic, token, room, canonical=room)
    # The bucket is now (nearly) empty; let it refill (10 tokens/s) before going on. Waiting for the rate
    # limiter is all this timer is for; it synchronises nothing.
    await asyncio.sleep(1.1)
    topic, token, room = pairs[100]
    await ws.refused(sub(topic, token, room), "err_bad_request", "subscription limit exceeded (100)")
    await ws.subscribe("channel.activities", OWNER, "", canonical="channel-1")  # an existing pair
    await ws.unsubscribe("channel.tips", "channel-1")  # frees one place for the 101st pair
    await ws.subscribe(topic, token, room, canonical=room)
    ok("subscription limit")
    await ws.ws.close()

    ws, _ = await welcomed(c.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(150):
        await ws.send(sub("channel.activities", OWNER, "channel-1", nonce=f"r-{i}"))
    replies = [await ws.next() for _ in range(150)]
    elapsed = loop.time() - started
    passed = [r for r in replies if "error" not in r]
    limited = [r for r in replies if r.get("error") == "rate_limit_exceeded"]
    assert len(passed) + len(limited) == 150, [r for r in replies if r not in passed and r not in limited]
    assert limited, "150 requests at once and no rate_limit_exceeded"
    for reply in limited:
        assert "nonce" not in reply and reply["data"] == {"message": "rate limit exceeded"}, reply
    assert [r.get("nonce") for r in replies[:100]] == [f"r-{i}" for i in range(100)], "the first 100 were not all served"
    numbers = [int(r["nonce"][2:]) for r in passed]
    assert numbers == sorted(set(numbers)), "responses out of order"
    for reply in passed:
        expect_response(reply, reply["nonce"], SUBSCRIBED, "channel.activities", "channel-1")
    assert len(passed) <= 100 + 10 * elapsed + 1, (len(passed), elapsed)
    await asyncio.sleep(1.1)  # the bucket refills at 10/s: this wait is the behaviour under test
    await ws.subscribe("channel.tips", OWNER, "channel-1")
    ok("rate limit")
    await ws.ws.close()


async def routing(c):
    c.a, _ = await welcomed(c.url)
    await c.a.subscribe("channel.activities", OWNER, "channel-1")
    c.b, _ = await welcomed(c.url)
    await c.b.subscribe("channel.activities", ROOM2, "", canonical="channel-2")
    event_id = await inject(c.http, follow("channel-1"))
    frame = await expect_follow(c.a, "channel-1", event_id)
    body, at = frame["data"], frame["data"].get("createdAt")
    assert isinstance(at, str) and MS.match(at) and frame["ts"] == at[:19] + "Z", frame
    assert body == {"_id": event_id, "channel": "channel-1", "type": "follow", "provider": "twitch",
                    "createdAt": at, "updatedAt": at,
                    "data": {"username": "alice", "displayName": "Alice", "providerId": "12345"}}, body
    ok("follow reaches its room")
    await expect_follow(c.b, "channel-2", await inject(c.http, follow("channel-2")))  # the marker comes first
    ok("follow does not reach another room")
    await inject(c.http, follow(None))
    await quiet(c)
    ok("no room reaches nobody")

    await c.a.subscribe("channel.tips", OWNER, "channel-1")
    await expect_donation(c.a, await inject(c.http, DONATION))
    await quiet(c)
    ok("donation")

    await c.a.subscribe("channel.chat.message", OWNER, "channel-1")
    data = {"text": "héllo ✨", "nick": "alice", "badges": [{"type": "moderator", "version": "1"}],
            "emotes": [], "bits": 0, "color": None, "first": True, "meta": {"ratio": 1.5}}
    await inject(c.http, {"source": "twitch", "type": "chat", "room": "channel-1",
                          "user": {"id": "12345", "username": "alice", "nickname": "Alice"}, "data": data})
    frame = await c.a.notification("channel.chat.message", "channel-1")
    assert frame["data"] == data, frame
    await quiet(c)
    ok("chat")

    await c.a.subscribe("channel.overlay.broadcast", OWNER, "channel-1")
    for kind in ("channel.overlay.broadcast", "channel_overlay_broadcast"):
        data = {"target": "global", "event": "confetti", "data": {"count": 50}, "kind": kind}
        await inject(c.http, {"source": "rules", "type": kind, "room": "channel-1", "data": data})
        frame = await c.a.notification("channel.overlay.broadcast", "channel-1")
        assert frame["data"] == data, frame
    await quiet(c)  # nothing reached channel.activities, channel.tips or channel.chat.message
    ok("overlay broadcast")
    await c.a.ws.close()
    await c.b.ws.close()


async def unsubscribing(c):
    ws, _ = await welcomed(c.url)
    await ws.subscribe("channel.activities", OWNER, "channel-1")
    await ws.subscribe("channel.activities", ROOM2, "channel-2", canonical="channel-2")
    await ws.subscribe("channel.chat.message", OWNER, "channel-1")
    await ws.unsubscribe("channel.activities", "channel-1")
    await inject(c.http, follow("channel-1"))
    await expect_follow(ws, "channel-2", await inject(c.http, follow("channel-2")))
    ok("unsubscribe with a room")

    await ws.unsubscribe("channel.activities")
    await inject(c.http, follow("channel-1"))
    await inject(c.http, follow("channel-2"))
    marker = {"text": "marker after the unsubscribe"}
    await inject(c.http, {"source": "twitch", "type": "chat", "room": "channel-1", "data": marker})
    frame = await ws.notification("channel.chat.message", "channel-1")
    assert frame["data"] == marker, f"another notification came first: {frame}"
    ok("unsubscribe without a room")

    await ws.unsubscribe("channel.tips", "channel-3")
    await ws.unsubscribe("channel.giveaways")
    await ws.unsubscribe("channel.activities", "")
    await ws.unsubscribe("channel.activities", "channel-1")
    ok("unsubscribe never subscribed")

    await ws.send(b"\x00\x01 binary, not a request")
    await ws.unsubscribe("channel.songrequest", "channel-1")  # its response must be the next frame
    ok("binary frame ignored")
    await ws.ws.close()

    # Every frame went through check_envelope; make sure the notifications were many.
    assert SEEN["notifications"] >= 15, f"only {SEEN['notifications']} notifications checked"
    ok("notification envelope")


# ---- scenarios -------------------------------------------------------------------------------------
async def checklist(url, http, _):
    context = SimpleNamespace(url=url, http=http)
    for part in (subscribing, malformed, limits, routing, unsubscribing):
        await part(context)


async def shutdown(url, http, _):
    ws, _ = await welcomed(url)
    await ws.subscribe("channel.activities", OWNER, "channel-1")
    await ws.subscribe("channel.tips", OWNER, "channel-1")
    ok("subscribed")
    frame = await ws.event(60)
    assert not isinstance(frame, tuple), f"closed {frame[1:]} without a reconnect message"
    assert frame["type"] == "reconnect", f"expected reconnect, got {frame}"
    assert frame["data"].get("message") == "The server is shutting down.", frame
    token = frame["data"].get("reconnect_token")
    assert isinstance(token, str) and JWT.match(token), f"not a compact JWT: {frame}"
    closing = await ws.event()
    assert closing == ("close", 1001, "Server shutting down"), f"expected Close 1001, got {closing}"
    print(f"token {token}", flush=True)
    ok("reconnect")


def with_token(url, token) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode({"reconnect_token": token})))


async def restore(url, http, token):
    assert token, "restore needs the token printed by the shutdown scenario"
    ws, _ = await welcomed(with_token(url, token))
    await expect_follow(ws, "channel-1", await inject(http, follow("channel-1")))  # no subscribe sent
    await expect_donation(ws, await inject(http, DONATION))
    ok("restored")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    bad = await connect(with_token(url, tampered))
    first = await bad.event()
    assert first == ("close", 1008, "Invalid reconnect token"), f"expected Close 1008 and no welcome, got {first}"
    ok("tampered")
    empty, _ = await welcomed(with_token(url, ""))
    ok("empty")
    await ws.ws.close(), await empty.ws.close()


async def main() -> None:
    if len(sys.argv) < 4 or sys.argv[1] not in ("checklist", "shutdown", "restore"):
        raise SystemExit(__doc__)
    scenario, url, http = sys.argv[1:4]
    try:
        await globals()[scenario](url, http, sys.argv[4] if len(sys.argv) > 4 else None)
    except Exception as error:  # noqa: BLE001 - one clear line, then the traceback
        traceback.print_exc()
        raise SystemExit(f"FAIL {scenario}, after 'ok {SEEN['last']}': {type(error).__name__}: {error}")


asyncio.run(main())
