// A HoloBridge client, written as for HoloBridge's Socket.IO API, pointed at Switchboard.
// Run: npm install socket.io-client && SOCKETIO_KEY=key-1 node examples/holobridge_client.js
// (with `api_keys = ["key-1"]` under [socketio] in switchboard.toml). It joins a guild, prints
// every `discord` event as one line, and injects one message itself (a Switchboard extension);
// with HOLOBRIDGE_EVENTS=N it exits after N events.
const { io } = require('socket.io-client');

const url = process.env.SOCKETIO_URL ?? 'http://127.0.0.1:3000';
const guild = process.env.GUILD_ID ?? '111';
const stopAfter = Number(process.env.HOLOBRIDGE_EVENTS ?? Infinity);

const socket = io(url, { auth: { apiKey: process.env.SOCKETIO_KEY } });
let events = 0;

socket.on('connect_error', (error) => {
  console.error(`refused: ${error.message}`);
  process.exit(1);
});
socket.on('connect', () => socket.emit('subscribe', { guildIds: [guild] }));
socket.on('error', ({ code, message }) => console.error(`${code}: ${message}`));
socket.on('subscribed', async ({ guildIds }) => {
  console.log(`subscribed to ${guildIds.join(', ')}`);
  const reply = await socket.timeout(5000).emitWithAck('inject', {
    event: 'messageCreate', guildId: guild, data: { content: 'hello from the example' },
  });
  console.log(`injected ${reply.status}`);
});
socket.on('discord', ({ event, guildId, data }) => {
  console.log(`${event} in ${guildId ?? 'no guild'}: ${JSON.stringify(data)}`);
  if (++events >= stopAfter) socket.disconnect();
});
socket.on('disconnect', () => process.exit(0));
