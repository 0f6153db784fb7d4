"""The VMSC documentation's Python client, pointed at Switchboard's custom face.

Run: pip install websockets && SWITCHBOARD_TOKEN=$(cargo run -q -- token) python examples/vmsc_client.py
It subscribes to gifts, injects one, triggers a rule by name and prints every frame it
receives; it exits once it has the rule's acknowledgement and its gift back.
"""
import asyncio
import json
import os

import websockets

URL = os.environ.get("SWITCHBOARD_URL", "ws://127.0.0.1:7895/")
TOKEN = os.environ["SWITCHBOARD_TOKEN"]
RULE = os.environ.get("SWITCHBOARD_RULE", "TikTok big gift")


async def main() -> None:
    async with websockets.connect(URL, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send(json.dumps({"action": "subscribe", "eventTypes": ["gift"], "sources": ["tiktok"]}))
        await ws.send(json.dumps({
            "action": "injectEvent",
            "event": {
                "type": "gift",
                "source": "tiktok",
                "user": {"id": "42", "username": "alice", "nickname": "Alice"},
                "data": {"giftName": "Rose", "giftId": 5655, "diamondCount": 1, "repeatCount": 150, "repeatEnd": True},
            },
        }))
        await ws.send(json.dumps({"action": "triggerRule", "ruleName": RULE}))
        acknowledged = gift_seen = False
        async for raw in ws:
            message = json.loads(raw)
            print(json.dumps(message), flush=True)
            if message.get("action") == "error":
                raise SystemExit(1)
            acknowledged = acknowledged or message.get("action") == "triggerRule"
            gift_seen = gift_seen or (message.get("action") == "event" and message["event"]["type"] == "gift")
            if acknowledged and gift_seen:
                return


asyncio.run(main())
