// An Astro alert widget, written as for StreamElements' Astro gateway, pointed at Switchboard.
// Run: npm install ws && ASTRO_TOKEN=overlay-secret node examples/astro_widget.js
// (with a [[astro.tokens]] entry for that token in switchboard.toml). It subscribes to
// activities and tips in the token's room and prints one alert line per notification; with
// ASTRO_ALERTS=N it exits after N alerts.
const WebSocket = require('ws');

const url = process.env.ASTRO_URL ?? 'ws://127.0.0.1:7896/';
const token = process.env.ASTRO_TOKEN;
const stopAfter = Number(process.env.ASTRO_ALERTS ?? Infinity);
const topics = ['channel.activities', 'channel.tips'];

function alert({ topic, data }) {
  if (topic === 'channel.tips') {
    const { user, amount, currency, message } = data.donation;
    return `${user.username} tipped ${amount} ${currency}: ${message}`;
  }
  const who = data.data.displayName ?? data.data.username ?? 'someone';
  return `${who}: ${data.type} on ${data.provider}`;
}

const ws = new WebSocket(url);
let alerts = 0;
ws.on('message', (raw) => {
  const message = JSON.parse(raw.toString());
  if (message.type === 'welcome') {
    for (const topic of topics) {
      ws.send(JSON.stringify({ type: 'subscribe', nonce: topic,
        data: { topic, room: '', token, token_type: 'apikey' } }));
    }
  } else if (message.type === 'response') {
    if (message.error) {
      console.error(`${message.nonce}: ${message.error}: ${message.data.message}`);
      process.exit(1);
    }
    console.log(`subscribed to ${message.data.topic} in ${message.data.room}`);
  } else if (message.type === 'message') {
    console.log(alert(message));
    if (++alerts >= stopAfter) ws.close();
  } else if (message.type === 'reconnect') {
    console.log('the server is restarting');
  }
});
ws.on('close', () => process.exit(0));
