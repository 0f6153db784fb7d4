// The VMSC documentation's Node client, pointed at Switchboard's custom face.
// Run: npm install ws && SWITCHBOARD_TOKEN=$(cargo run -q -- token) node examples/vmsc_client.js
// It subscribes to chat and gift events, injects a gift, triggers a rule by name and prints
// every frame it receives; it exits once it has the rule's acknowledgement and its gift back.
const WebSocket = require('ws');

const url = process.env.SWITCHBOARD_URL ?? 'ws://127.0.0.1:7895/';
const token = process.env.SWITCHBOARD_TOKEN;
const rule = process.env.SWITCHBOARD_RULE ?? 'TikTok big gift';

const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });

ws.on('open', () => {
  ws.send(JSON.stringify({ action: 'subscribe', eventTypes: ['chat', 'gift'], sources: ['tiktok'] }));
  ws.send(JSON.stringify({
    action: 'injectEvent',
    event: {
      type: 'gift',
      source: 'tiktok',
      user: { id: '42', username: 'alice', nickname: 'Alice' },
      data: { giftName: 'Rose', giftId: 5655, diamondCount: 1, repeatCount: 150, repeatEnd: true },
    },
  }));
  ws.send(JSON.stringify({ action: 'triggerRule', ruleName: rule }));
});

let acknowledged = false;
let giftSeen = false;
ws.on('message', (data) => {
  const message = JSON.parse(data.toString());
  console.log(JSON.stringify(message));
  if (message.action === 'error') {
    process.exitCode = 1;
    ws.close();
    return;
  }
  acknowledged ||= message.action === 'triggerRule';
  giftSeen ||= message.action === 'event' && message.event.type === 'gift';
  if (acknowledged && giftSeen) ws.close();
});

ws.on('close', (code, reason) => {
  if (code !== 1005 && code !== 1000) {
    console.error(`closed: ${code} ${reason}`);
    process.exitCode = 1;
  }
});
