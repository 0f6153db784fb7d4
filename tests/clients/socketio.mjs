// Drives Switchboard's socketio face (HoloBridge-compatible, docs/socketio.md) with the official
// socket.io-client 4.x, as a HoloBridge client would. Events are injected through the custom (VMSC) face
// with the `ws` package and with `POST <http-url>events` (global fetch).
// Usage: node socketio.mjs <scenario> <socketio-url> <http-url> <custom-url> <custom-token>
// Scenarios: checklist, websocket, refused (for a server with api_keys = []), shutdown (stop the server
// after "ok subscribed"). Prints "ok <step>" lines;
// exits non-zero on the first failure.
//
// Ordering: events injected through one custom-face connection are published in the order sent, and a
// `POST /events` answers once its event is published. To prove that an event does NOT reach a socket, a
// marker event published after it must be the socket's very next event. No sleeps.
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const [scenario, sioUrl, httpUrl, customUrl, customToken] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INVALID_GUILDS = { message: 'guildIds must be an array of strings', code: 'INVALID_PAYLOAD' };
const NO_EVENT = 'event must be a non-empty string';
const MESSAGE = {
  id: '1300000000000000001', channelId: '222', guildId: '111',
  author: { id: '333', username: 'alice', globalName: 'Alice', bot: false },
  content: 'hello', createdAt: '2025-11-22T10:00:00.000Z',
};
const USER_UPDATE = { old: null, new: { id: '333', username: 'alice' } };
const INTERACTION = {
  id: '1400000000000000001', type: 2, guildId: '111', channelId: '222', commandName: 'ping',
  user: { id: '333', username: 'alice' },
};
const seen = { last: '(none yet)' };
const show = (value) => (value instanceof Error ? `Error(${JSON.stringify(value.message)})` : JSON.stringify(value));
const describe = (item) => `${item.event} ${item.args.map(show).join(', ')}`;

function ok(step) {
  seen.last = step;
  console.log(`ok ${step}`);
}

/// `promise`, or a rejection naming `what` after 10 s.
async function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing within ${TIMEOUT_MS / 1000} s: ${what}`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/// A FIFO of received items; `next(what)` waits at most 10 s for the next one.
function queue(label) {
  const items = [];
  const waiting = [];
  return {
    push(item) {
      const wake = waiting.shift();
      if (wake) wake(item);
      else items.push(item);
    },
    async next(what) {
      if (items.length) return items.shift();
      let wake;
      const arrival = new Promise((resolve) => { wake = resolve; waiting.push(resolve); });
      try {
        return await within(arrival, `${label} waiting for ${what}`);
      } finally {
        const at = waiting.indexOf(wake);
        if (at >= 0) waiting.splice(at, 1);
      }
    },
  };
}

// ---- Socket.IO clients ------------------------------------------------------------------------------
/// A socket.io-client socket whose every event (reserved ones included) goes to one queue, in order.
function open(name, auth, options = {}) {
  const socket = io(sioUrl, {
    forceNew: true, reconnection: false, timeout: TIMEOUT_MS, ...(auth === undefined ? {} : { auth }), ...options,
  });
  const events = queue(name);
  socket.on('connect', () => events.push({ event: 'connect', args: [] }));
  socket.on('connect_error', (error) => events.push({ event: 'connect_error', args: [error] }));
  socket.on('disconnect', (reason) => events.push({ event: 'disconnect', args: [reason] }));
  socket.onAny((event, ...args) => events.push({ event, args }));
  const client = {
    name, socket,
    next: (what) => events.next(what),
    /// The next event must be `event` with exactly one argument deep-equal to `payload`.
    async expect(event, payload) {
      const item = await events.next(`${event} ${show(payload)}`);
      assert.ok(item.event === event, `${name}: expected ${event} ${show(payload)}, got ${describe(item)}`);
      assert.deepEqual(item.args, [payload], `${name}: expected ${event} ${show(payload)}, got ${describe(item)}`);
    },
    async subscribe(guildIds, answer = guildIds) {
      socket.emit('subscribe', { guildIds });
      await client.expect('subscribed', { guildIds: answer });
    },
    async unsubscribe(guildIds) {
      socket.emit('unsubscribe', { guildIds });
      await client.expect('unsubscribed', { guildIds });
    },
    /// emitWithAck("inject", payload) with a 10 s timeout.
    async inject(payload) {
      try {
        return await socket.timeout(TIMEOUT_MS).emitWithAck('inject', payload);
      } catch (error) {
        throw new Error(`${name}: no acknowledgement for inject ${show(payload)}: ${error.message}`);
      }
    },
    discord: (event, guildId, data) => client.expect('discord', { event, guildId, data }),
    close: () => socket.close(),
  };
  return client;
}

async function connected(name, auth, options) {
  const client = open(name, auth, options);
  const first = await client.next('connect');
  assert.ok(first.event === 'connect', `${name} (auth ${show(auth)}): expected connect, got ${describe(first)}`);
  assert.ok(client.socket.connected && typeof client.socket.id === 'string' && client.socket.id !== '',
    `${name}: connected without an id`);
  return client;
}

/// The default client starts on polling and must then upgrade to WebSocket.
async function upgraded(client) {
  const { engine } = client.socket.io;
  if (engine.transport.name !== 'websocket') {
    await within(new Promise((resolve, reject) => {
      engine.once('upgrade', resolve);
      engine.once('upgradeError', (error) => reject(new Error(`${client.name}: upgrade failed: ${error.message}`)));
    }), `${client.name}: the upgrade from polling to websocket`);
  }
  assert.equal(engine.transport.name, 'websocket', `${client.name}: not upgraded`);
}

async function refused(auth, message) {
  const client = open('refused', auth);
  const first = await client.next(`connect_error ${message}`);
  client.close();
  assert.ok(first.event === 'connect_error', `auth ${show(auth)}: expected connect_error ${show(message)}, got ${describe(first)}`);
  assert.equal(first.args[0].message, message, `auth ${show(auth)}: wrong connect_error`);
  assert.ok(!client.socket.connected, `auth ${show(auth)}: connected anyway`);
}

// ---- injection --------------------------------------------------------------------------------------
/// A custom-face (VMSC) connection: a queue of JSON frames.
async function customFace(name) {
  const ws = new WebSocket(customUrl, { headers: { Authorization: `Bearer ${customToken}` } });
  const frames = queue(name);
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  ws.on('close', (code, reason) => frames.push({ closed: code, reason: reason.toString() }));
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }),
    `${name}: connecting to ${customUrl}`);
  ws.on('error', () => {}); // a later error also ends in 'close'
  return { ws, next: (what) => frames.next(what), send: (message) => ws.send(JSON.stringify(message)) };
}

let injector = null;

/// injectEvent through the custom face; returns the event id.
async function inject(event) {
  injector ??= await customFace('custom-face injector');
  injector.send({ action: 'injectEvent', event });
  const ack = await injector.next(`the injectEvent ack for ${show(event)}`);
  assert.ok(ack.action === 'injectEvent' && ack.status === 'ok' && UUID.test(String(ack.eventId)),
    `injectEvent ${show(event)}: ${show(ack)}`);
  return ack.eventId;
}

/// POST <http-url>events; it answers once the event is published.
async function post(event) {
  const response = await fetch(new URL('events', httpUrl), {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.SWITCHBOARD_TOKEN}` }, body: JSON.stringify(event),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await response.json();
  assert.ok(response.status === 200 && body.status === 'ok' && UUID.test(String(body.eventId)),
    `POST events ${show(event)}: ${response.status} ${show(body)}`);
  return body.eventId;
}

function expectOkAck(reply, payload) {
  assert.ok(reply && reply.status === 'ok' && UUID.test(String(reply.eventId)), `inject ${show(payload)}: ${show(reply)}`);
  assert.deepEqual(Object.keys(reply).sort(), ['eventId', 'status'], `inject ${show(payload)}: ${show(reply)}`);
  return reply.eventId;
}

// ---- scenarios --------------------------------------------------------------------------------------
async function checklist() {
  const a = await connected('A', { apiKey: 'key-1' });
  await upgraded(a);
  // What the open packet told the client (engine.io-client keeps it in these fields).
  const { engine } = a.socket.io;
  assert.deepEqual([engine._pingInterval, engine._pingTimeout, engine._maxPayload], [25000, 20000, 1000000]);
  ok('connect with key-1 (polling, then upgrade to websocket)');
  const c = await connected('C', { apiKey: 'key-2' });
  ok('connect with key-2');
  for (const auth of [undefined, {}, { apiKey: '' }, { apiKey: null }]) await refused(auth, 'Missing API key');
  ok('missing API key refused');
  for (const auth of [{ apiKey: 'nope' }, { apiKey: 'KEY-1' }, { apiKey: 12345 }]) await refused(auth, 'Invalid API key');
  ok('invalid API key refused');

  await a.subscribe(['111', '', '111', '222'], ['111', '222']);
  await a.subscribe([], []);
  await a.subscribe(['111'], ['111']); // already joined: listed again
  ok('subscribe');
  await a.unsubscribe(['222', '333', '222', '']); // answered exactly as sent; A stays in 111
  ok('unsubscribe answers the list as sent');

  const b = await connected('B', { apiKey: 'key-1' });
  for (const args of [
    [{ guildIds: '111' }],
    [{ guildIds: ['111', 5] }], // must not join 111: checked by the routing below
    [],
    [null],
    [{}],
  ]) {
    b.socket.emit('subscribe', ...args);
    await b.expect('error', INVALID_GUILDS);
    assert.ok(b.socket.connected, `B disconnected after subscribe ${show(args)}`);
  }
  b.socket.emit('unsubscribe', { guildIds: '222' });
  await b.expect('error', INVALID_GUILDS);
  ok('invalid subscribe payloads answer error INVALID_PAYLOAD');
  await b.subscribe(['222']);
  ok('socket still usable after the errors');

  // A is in 111, B in 222, C in nothing.
  await inject({ source: 'Discord', type: 'messageCreate', room: '111', data: MESSAGE });
  await a.discord('messageCreate', '111', MESSAGE);
  ok('discord event with a room reaches its guild');
  await inject({ source: 'DISCORD', type: 'marker', room: '222', data: { marker: 1 } });
  await b.discord('marker', '222', { marker: 1 }); // not the 111 event
  ok('and not a socket in another guild');

  await a.unsubscribe(['111']);
  await inject({ source: 'discord', type: 'messageCreate', room: '111', data: MESSAGE });
  await inject({ source: 'discord', type: 'userUpdate', data: USER_UPDATE });
  for (const s of [a, b, c]) await s.discord('userUpdate', null, USER_UPDATE);
  ok('discord event without a room reaches every socket');
  ok('after unsubscribe the guild event no longer arrives'); // A's (and C's) next event was the one above

  await a.subscribe(['111']);
  await post({ source: 'twitch', type: 'messageCreate', room: '111', data: { content: 'not discord' } });
  await post({ source: 'twitch', type: 'follow', data: {} });
  await post({ source: 'discordbot', type: 'messageCreate', data: { content: 'not discord either' } });
  await inject({ source: 'discord', type: 'marker', data: { marker: 2 } });
  for (const s of [a, b, c]) await s.discord('marker', null, { marker: 2 });
  ok('events from other sources reach no socket');

  await inject({ source: 'discord', type: 'interactionCreate', room: '111', data: INTERACTION });
  const both = [await a.next('discord'), await a.next('interaction:create')].sort((x, y) => x.event.localeCompare(y.event));
  assert.deepEqual(both, [
    { event: 'discord', args: [{ event: 'interactionCreate', guildId: '111', data: INTERACTION }] },
    { event: 'interaction:create', args: [INTERACTION] },
  ], `A: ${both.map(describe).join(' | ')}`);
  ok('interactionCreate arrives as discord and as interaction:create');
  await inject({ source: 'discord', type: 'interactionCreate', data: INTERACTION });
  await inject({ source: 'discord', type: 'marker', data: { marker: 3 } });
  for (const s of [a, b, c]) {
    await s.discord('interactionCreate', null, INTERACTION); // B and C: not the guild 111 one
    await s.discord('marker', null, { marker: 3 }); // no interaction:create without a room
  }
  ok('interactionCreate without a room is only a discord event');

  const watcher = await customFace('custom-face subscriber');
  watcher.send({ action: 'subscribe', sources: ['discord'] });
  assert.deepEqual(await watcher.next('the subscribe ack'), { action: 'subscribe', status: 'ok', eventTypes: [], sources: ['discord'] });
  const hello = { event: 'messageCreate', guildId: '111', data: { content: 'hello' } };
  const eventId = expectOkAck(await a.inject(hello), hello);
  ok('inject answers {status:"ok", eventId} through the ack');
  await a.discord('messageCreate', '111', { content: 'hello' });
  ok('the sender receives the injected event');
  const frame = await watcher.next('the injected event');
  assert.ok(frame.action === 'event' && frame.event?.id === eventId, `expected event ${eventId}, got ${show(frame)}`);
  const { id, source, type, room, data, user } = frame.event;
  assert.deepEqual({ id, source, type, room, data, user }, {
    id: eventId, source: 'discord', type: 'messageCreate', room: '111', data: { content: 'hello' },
    user: { id: '', username: '', nickname: '' },
  }, show(frame));
  ok('a custom-face subscriber receives the same event id');

  for (const [payload, message] of [
    [{ guildId: '111', data: { content: 'no event' } }, NO_EVENT],
    [{ event: '', guildId: '111' }, NO_EVENT],
    [{ event: 5, guildId: '111' }, NO_EVENT],
    ['messageCreate', 'inject payload must be an object'],
    [{ event: 'messageCreate', guildId: 111 }, 'guildId must be a string or null'],
    [{ event: 'messageCreate', guildId: '111', data: 'hello' }, 'data must be an object'],
  ]) {
    assert.deepEqual(await a.inject(payload), { status: 'error', code: 'INVALID_PAYLOAD', message }, `inject ${show(payload)}`);
  }
  ok('invalid inject answers {status:"error", code:"INVALID_PAYLOAD"} through the ack');
  a.socket.emit('inject', { guildId: '111', data: { content: 'no event, no ack' } });
  await a.expect('error', { message: NO_EVENT, code: 'INVALID_PAYLOAD' });
  ok('invalid inject without an ack answers an error event');

  // A marker from the same socket: published after anything the invalid injects could have put on the bus.
  const userUpdate = { event: 'userUpdate' };
  const markerId = expectOkAck(await a.inject(userUpdate), userUpdate);
  for (const s of [a, b, c]) await s.discord('userUpdate', null, {}); // B: not the guild 111 "hello" either
  ok('inject without a guild reaches every socket');
  const next = await watcher.next('the userUpdate event');
  assert.ok(next.action === 'event' && next.event?.id === markerId, `expected event ${markerId}, got ${show(next)}`);
  ok('invalid injects publish nothing');
  const blank = { event: 'presenceUpdate', guildId: '', data: null };
  expectOkAck(await a.inject(blank), blank);
  for (const s of [a, b, c]) await s.discord('presenceUpdate', null, {});
  const nullGuild = { event: 'presenceUpdate', guildId: null, data: { status: 'online' } };
  expectOkAck(await a.inject(nullGuild), nullGuild);
  for (const s of [a, b, c]) await s.discord('presenceUpdate', null, { status: 'online' });
  ok('inject with an empty or null guildId and null data');

  for (const s of [a, b, c]) assert.ok(s.socket.connected, `${s.name} is no longer connected`);
  ok('every socket still connected');
  for (const s of [a, b, c]) s.close();
  watcher.ws.close();
}

async function websocket() {
  const a = await connected('A', { apiKey: 'key-1' }, { transports: ['websocket'] });
  assert.equal(a.socket.io.engine.transport.name, 'websocket', 'A: not on websocket');
  ok('connect with transports ["websocket"]');
  await a.subscribe(['111', '', '111'], ['111']);
  ok('subscribe');
  await inject({ source: 'Discord', type: 'messageCreate', room: '111', data: MESSAGE });
  await a.discord('messageCreate', '111', MESSAGE);
  ok('discord event with a room reaches its guild');
  const hello = { event: 'messageCreate', guildId: '111', data: { content: 'hello' } };
  expectOkAck(await a.inject(hello), hello);
  ok('inject answers {status:"ok", eventId} through the ack');
  await a.discord('messageCreate', '111', { content: 'hello' });
  ok('the sender receives the injected event');
  assert.ok(a.socket.connected && a.socket.io.engine.transport.name === 'websocket', 'A: no longer connected on websocket');
  a.close();
}

async function refusedScenario() {
  await refused({ apiKey: 'key-1' }, 'Invalid API key');
  ok('key-1 refused with Invalid API key');
  await refused(undefined, 'Missing API key');
  ok('no auth refused with Missing API key');
}

/// Prints "ok subscribed", then expects the server to stop: each socket must see a lost transport,
/// after which socket.io-client reconnects by itself (not `io server disconnect`, after which it would not).
async function shutdown() {
  const clients = [
    await connected('A', { apiKey: 'key-1' }, { reconnection: true }),
    await connected('B', { apiKey: 'key-1' }, { reconnection: true, transports: ['websocket'] }),
  ];
  await upgraded(clients[0]);
  for (const client of clients) await client.subscribe(['111']);
  ok('subscribed');
  for (const client of clients) {
    const item = await client.next('disconnect');
    assert.deepEqual(item, { event: 'disconnect', args: ['transport close'] }, `${client.name}: got ${describe(item)}`);
    assert.ok(client.socket.active, `${client.name}: would not reconnect`);
    ok(`${client.name} sees transport close and reconnects`);
    client.close();
  }
}

const scenarios = { checklist, websocket, refused: refusedScenario, shutdown };
if (!scenarios[scenario] || !sioUrl || !httpUrl || !customUrl || customToken === undefined) {
  console.error('usage: node socketio.mjs checklist|websocket|refused|shutdown <socketio-url> <http-url> <custom-url> <custom-token>');
  process.exit(2);
}
try {
  await scenarios[scenario]();
  injector?.ws.close();
  process.exit(0);
} catch (error) {
  console.error(error);
  console.error(`FAIL ${scenario}, after 'ok ${seen.last}': ${String(error.message).replace(/\s*\n\s*/g, ' ')}`);
  process.exit(1);
}
