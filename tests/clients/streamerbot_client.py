"""Drives pystreamerbot against a running Switchboard: connect, subscribe, receive a follow.

Usage: python streamerbot_client.py <ws-url> <http-url>
Prints "ok <step>" lines; exits non-zero on failure.
"""
import asyncio
import json
import os
import sys
import urllib.parse
import urllib.request

import pystreamerbot

TIMEOUT = 10


def inject(http_url: str, event: dict) -> str:
    request = urllib.request.Request(
        urllib.parse.urljoin(http_url, "/events"),
        data=json.dumps(event).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer " + os.environ["SWITCHBOARD_TOKEN"]},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.load(response)["eventId"]


async def main(ws_url: str, http_url: str) -> None:
    url = urllib.parse.urlparse(ws_url)
    client = pystreamerbot.Client(
        events="Twitch.Follow", host=url.hostname, port=url.port, endpoint=url.path or "/", retries=1
    )
    ready = asyncio.Event()
    follows: asyncio.Queue = asyncio.Queue()

    @client.event
    async def on_ready():
        ready.set()

    @client.event
    async def on_twitch_follow(data):
        await follows.put(data)

    listener = asyncio.create_task(client.listen())
    await asyncio.wait_for(ready.wait(), TIMEOUT)
    print("ok ready", flush=True)
    await asyncio.to_thread(inject, http_url, {"source": "twitch", "type": "cheer", "data": {"bits": 1}})
    await asyncio.to_thread(inject, http_url, {"source": "twitch", "type": "follow", "data": {"user_name": "Bob"}})
    data = await asyncio.wait_for(follows.get(), TIMEOUT)
    assert data == {"user_name": "Bob"}, data
    print("ok follow", flush=True)
    await client.close()
    listener.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
