// Drives Switchboard's astro face (the StreamElements Astro protocol) as a widget would: plain
// WebSocket + JSON with the `ws` package, events injected with `POST <http-url>events` (global fetch).
// Usage: node astro.mjs <scenario> <astro-url> <http-url> [token]
// Scenarios: checklist, shutdown, restore <token>. Prints "ok <step>" lines; exits non-zero on the
// first failure.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

const [scenario, astroUrl, httpUrl, givenToken] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const WELCOME = 'You are in a maze of dank memes, all alike.';
const SUBSCRIBED = 'successfully subscribed to topic';
const UNSUBSCRIBED = 'successfully unsubscribed from topic';
const [OWNER, OVERLAY, ROOM2] = ['owner-secret', 'overlay-secret', 'room2-secret'];
const TOPICS = `channel.activities channel.tips channel.tips.moderation channel.chat.message
channel.session.update channel.session.reset channel.stream.status channel.overlay.action
channel.overlay.broadcast channel.overlay.update channel.songrequest channel.contests channel.giveaways
channel.chatbot.status channel.chatbot.modules channel.chatbot.modules.pyramid
channel.chatbot.modules.emotecombo channel.chatbot.commands channel.chatbot.timers channel.chatbot.filters
channel.chatbot.counters channel.announcements channel.chatstats channel.kvstore.update
channel.loyalty.redemptions channel.loyalty.items`.split(/\s+/);
assert.equal(TOPICS.length, 26);
const seen = { notifications: 0, last: '(none yet)', nonce: 0 };
const show = (value) => JSON.stringify(value);

function ok(step) {
  seen.last = step;
  console.log(`ok ${step}`);
}

/// Section 3: every server message; notifications also carry a known topic and a room. `ids` are those
/// seen on the connection (one notification is the same bytes for every subscriber, so only per connection).
function checkEnvelope(frame, ids) {
  assert.ok(frame && typeof frame === 'object' && !Array.isArray(frame), `not a JSON object: ${show(frame)}`);
  assert.ok(['welcome', 'response', 'message', 'reconnect'].includes(frame.type), `bad type: ${show(frame)}`);
  assert.ok(typeof frame.id === 'string' && ULID.test(frame.id), `id is not a ULID: ${show(frame)}`);
  assert.ok(!ids.has(frame.id), `id reused: ${show(frame)}`);
  ids.add(frame.id);
  assert.ok(typeof frame.ts === 'string' && TS.test(frame.ts) && !Number.isNaN(Date.parse(frame.ts)),
    `ts is not RFC 3339 UTC to the second: ${show(frame)}`);
  assert.ok('data' in frame, `no data: ${show(frame)}`);
  if (frame.type !== 'response') assert.ok(!('nonce' in frame) && !('error' in frame), `nonce/error outside a response: ${show(frame)}`);
  if (frame.type === 'message') {
    assert.ok(TOPICS.includes(frame.topic), `unknown topic: ${show(frame)}`);
    assert.ok(typeof frame.room === 'string' && frame.room !== '', `no room: ${show(frame)}`);
    seen.notifications += 1;
  }
  return frame;
}

function sub(topic, token, room, tokenType = 'apikey', nonce = `sub-${++seen.nonce}`) {
  const data = { topic, token, token_type: tokenType };
  if (room !== undefined) data.room = room;
  return { type: 'subscribe', nonce, data };
}

function expectResponse(frame, nonce, message, topic, room) {
  assert.ok(frame.type === 'response' && !('error' in frame), `expected a success, got ${show(frame)}`);
  assert.equal(frame.nonce, nonce, `nonce not echoed: ${show(frame)}`);
  assert.deepEqual(frame.data, { message, topic, room }, `unexpected response: ${show(frame)}`);
}

/// A connection: a queue of received frames, then its close ({ close: code, reason }).
async function connect(target) {
  const ws = new WebSocket(target);
  const queue = [];
  const waiting = [];
  const ids = new Set();
  let closed = null;
  const push = (item) => { const wake = waiting.shift(); if (wake) wake(item); else queue.push(item); };
  ws.on('message', (data, isBinary) => push({ data, isBinary }));
  ws.on('close', (code, reason) => { closed = { close: code, reason: reason.toString() }; push(closed); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.on('error', () => {}); // a later error also ends in 'close'

  /// The next frame (checked), or the close once the server has closed.
  async function event(timeoutMs = TIMEOUT_MS) {
    let item = queue.shift() ?? closed;
    if (!item) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`nothing received within ${timeoutMs / 1000} s`)), timeoutMs);
      });
      item = await Promise.race([new Promise((resolve) => waiting.push(resolve)), timeout]).finally(() => clearTimeout(timer));
    }
    if ('close' in item) return item;
    assert.equal(item.isBinary, false, `binary frame from the server: ${item.data}`);
    return checkEnvelope(JSON.parse(item.data.toString()), ids);
  }
  async function next(timeoutMs) {
    const frame = await event(timeoutMs);
    assert.ok(!('close' in frame), `connection closed ${show(frame)}`);
    return frame;
  }
  const send = (message) => ws.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message));
  const request = (message) => { send(message); return next(); };
  const client = {
    ws, event, next, send, request,
    async subscribe(topic, token, room, tokenType = 'apikey', canonical = 'channel-1') {
      const message = sub(topic, token, room, tokenType);
      expectResponse(await request(message), message.nonce, SUBSCRIBED, topic, canonical);
    },
    async unsubscribe(topic, room) {
      const nonce = `unsub-${++seen.nonce}`;
      const data = room === undefined ? { topic } : { topic, room };
      expectResponse(await request({ type: 'unsubscribe', nonce, data }), nonce, UNSUBSCRIBED, topic, room ?? '');
    },
    /// The connection still answers (an unsubscribe from a pair nobody holds always succeeds).
    alive: () => client.unsubscribe('channel.giveaways', 'nowhere'),
    /// Sends `message`, expects the error response, then checks the connection is still open.
    async refused(message, error, text) {
      const reply = await request(message);
      assert.ok(reply.type === 'response' && reply.error === error, `${show(message)}: expected ${error}, got ${show(reply)}`);
      assert.equal(reply.data.message, text, `${show(message)}: got ${show(reply)}`);
      if (typeof message?.nonce === 'string') assert.equal(reply.nonce, message.nonce, `nonce not echoed: ${show(reply)}`);
      else assert.ok(!('nonce' in reply), `unexpected nonce: ${show(reply)}`);
      await client.alive();
    },
    async notification(topic, room) {
      const frame = await next();
      assert.ok(frame.type === 'message' && frame.topic === topic && frame.room === room,
        `expected a ${topic} notification for ${room}, got ${show(frame)}`);
      return frame;
    },
  };
  return client;
}

async function welcomed(target) {
  const client = await connect(target);
  const frame = await client.next();
  assert.ok(frame.type === 'welcome', `not a welcome: ${show(frame)}`);
  assert.deepEqual(Object.keys(frame).sort(), ['data', 'id', 'ts', 'type'], `unexpected fields: ${show(frame)}`);
  assert.equal(frame.data.message, WELCOME);
  assert.ok(ULID.test(String(frame.data.client_id)), `client_id is not a ULID: ${show(frame)}`);
  return [client, frame];
}

async function inject(event) {
  const response = await fetch(new URL('events', httpUrl), {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.SWITCHBOARD_TOKEN}` }, body: JSON.stringify(event),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await response.json();
  assert.ok(response.status === 200 && body.status === 'ok' && UUID.test(String(body.eventId)), `${response.status} ${show(body)}`);
  return body.eventId;
}

const follow = (room) => ({
  source: 'twitch', type: 'follow', user: { id: '12345', username: 'alice', nickname: 'Alice' }, data: {},
  ...(room === undefined ? {} : { room }),
});
const DONATION = {
  source: 'streamlabs', type: 'donation', user: { id: '', username: 'bob', nickname: 'Bob' }, room: 'channel-1',
  data: { amount: 5, currency: 'USD', message: 'Great stream!' },
};

async function expectFollow(client, room, eventId) {
  const frame = await client.notification('channel.activities', room);
  assert.equal(frame.data._id, eventId, `another notification came first: ${show(frame)}`);
  return frame;
}

async function expectDonation(client, eventId) {
  const frames = {};
  for (let i = 0; i < 2; i += 1) {
    const frame = await client.next();
    assert.ok(frame.type === 'message' && frame.room === 'channel-1', show(frame));
    frames[frame.topic] = frame.data;
  }
  assert.deepEqual(Object.keys(frames).sort(), ['channel.activities', 'channel.tips']);
  const { 'channel.activities': activity, 'channel.tips': tip } = frames;
  const at = activity.createdAt;
  assert.ok(typeof at === 'string' && MS.test(at), show(activity));
  assert.deepEqual(activity, {
    _id: eventId, channel: 'channel-1', type: 'tip', provider: 'streamlabs', createdAt: at, updatedAt: at,
    data: { ...DONATION.data, username: 'bob', displayName: 'Bob' },
  });
  assert.deepEqual(tip, {
    _id: eventId, channel: 'channel-1', provider: 'streamlabs', approved: 'allowed', status: 'success',
    createdAt: at, updatedAt: at, transactionId: eventId,
    donation: { user: { username: 'bob' }, message: 'Great stream!', amount: 5, currency: 'USD' },
  });
}

/// Marker: a fresh follow in each room must be the very next frame of its subscriber.
async function quiet(c) {
  const one = await inject(follow('channel-1'));
  const two = await inject(follow('channel-2'));
  await expectFollow(c.a, 'channel-1', one);
  await expectFollow(c.b, 'channel-2', two);
}

// ---- checklist ----------------------------------------------------------------------------------
async function subscribing() {
  const [[first, one], [second, two]] = [await welcomed(astroUrl), await welcomed(astroUrl)];
  assert.notEqual(one.data.client_id, two.data.client_id, 'client_id is not fresh');
  first.ws.close();
  second.ws.close();
  ok('welcome');

  let [ws] = await welcomed(astroUrl);
  await ws.subscribe('channel.activities', OWNER, '');
  await ws.subscribe('channel.tips', OWNER); // no room at all: the default ""
  await ws.subscribe('channel.tips', OVERLAY, '');
  await ws.subscribe('channel.activities', ROOM2, '', 'apikey', 'channel-2');
  ok('subscribe with an empty room');
  await ws.subscribe('channel.activities', OWNER, 'channel-1'); // the same pair again: still a success
  await ws.subscribe('channel.activities', ROOM2, 'channel-2', 'apikey', 'channel-2');
  ok("subscribe with the token's room");

  for (const tokenType of ['jwt', 'oauth2', 'apikey', 'oauth']) await ws.subscribe('channel.activities', OWNER, 'channel-1', tokenType);
  await ws.refused(sub('channel.activities', OWNER, 'channel-1', 'basic'), 'err_bad_request', 'invalid token_type');
  ok('token types');

  for (const [message, text] of [
    [sub('channel.activities', 'nope', 'channel-1'), 'invalid token'],
    [sub('channel.activities', OWNER, 'channel-2'), "token is not valid for room 'channel-2'"],
    [sub('channel.activities', OWNER, 'Channel-1'), "token is not valid for room 'Channel-1'"],
    [sub('channel.activities', 'room3-secret', 'channel-1'), "token is not valid for room 'channel-1'"],
    [sub('channel.chat.message', OVERLAY, 'channel-1'), "missing scope 'overlays:read'"],
    [sub('channel.tips.moderation', OVERLAY, ''), "missing scope 'tips:moderation'"],
  ]) await ws.refused(message, 'err_unauthorized', text);
  ok('unauthorized');
  ws.ws.close();

  [ws] = await welcomed(astroUrl);
  for (const topic of TOPICS) await ws.subscribe(topic, OWNER, 'channel-1');
  ok('every topic with a star token');
  for (const topic of ['channel.contests', 'channel.giveaways', 'channel.chatbot.counters', 'channel.chatstats']) {
    await ws.subscribe(topic, OVERLAY, '');
  }
  await ws.refused(sub('channel.contests', 'nope', ''), 'err_unauthorized', 'invalid token');
  ok('contests needs only a valid token');
  ws.ws.close();
}

async function malformed() {
  const [ws] = await welcomed(astroUrl);
  for (const message of [
    { type: 'publish', nonce: 't-publish', data: { topic: 'channel.activities', room: 'channel-1' } },
    { type: 'ping', nonce: 't-ping' },
    { nonce: 't-none', data: sub('channel.activities', OWNER, 'channel-1').data },
    { type: 'ping', nonce: 7 }, // a non-string nonce is not echoed
  ]) await ws.refused(message, 'invalid_message_type', 'invalid message type');
  ok('invalid message type');

  const base = { room: 'channel-1', token: OWNER, token_type: 'apikey' };
  for (const [message, text] of [
    [{ type: 'subscribe', nonce: 'b-topic', data: { ...base, topic: 'channel.nope' } }, 'invalid topic'],
    [{ type: 'subscribe', nonce: 'b-case', data: { ...base, topic: 'Channel.Activities' } }, 'invalid topic'],
    [{ type: 'unsubscribe', nonce: 'b-unsub', data: { topic: 'channel.nope' } }, 'invalid topic'],
    [{ type: 'subscribe', nonce: 'b-missing', data: base }, 'missing topic'],
    [{ type: 'subscribe', nonce: 'b-empty', data: { ...base, topic: '' } }, 'missing topic'],
    [{ type: 'subscribe', nonce: 'b-data' }, 'missing data'],
    [{ type: 'subscribe', nonce: 'b-room', data: { ...base, topic: 'channel.tips', room: 5 } }, 'room must be a string'],
    [{ type: 'subscribe', nonce: 'b-token', data: { topic: 'channel.tips', token_type: 'apikey' } }, 'missing token'],
    ['hello', 'invalid JSON'],
    ['[1, 2]', 'message must be a JSON object'],
  ]) await ws.refused(message, 'err_bad_request', text);
  ok('bad requests');
  ws.ws.close();
}

async function limits() {
  let [ws] = await welcomed(astroUrl);
  const rooms = [[OWNER, 'channel-1'], [ROOM2, 'channel-2'], ['room3-secret', 'channel-3'], ['room4-secret', 'channel-4']];
  const pairs = rooms.flatMap(([token, room]) => TOPICS.map((topic) => [topic, token, room]));
  // One at a time: the 100 tokens of the full bucket.
  for (const [topic, token, room] of pairs.slice(0, 100)) await ws.subscribe(topic, token, room, 'apikey', room);
  // The bucket is now (nearly) empty; let it refill (10 tokens/s) before going on. Waiting for the rate
  // limiter is all this timer is for; it synchronises nothing.
  await sleep(1100);
  const [topic, token, room] = pairs[100];
  await ws.refused(sub(topic, token, room), 'err_bad_request', 'subscription limit exceeded (100)');
  await ws.subscribe('channel.activities', OWNER, ''); // an existing pair
  await ws.unsubscribe('channel.tips', 'channel-1'); // frees one place for the 101st pair
  await ws.subscribe(topic, token, room, 'apikey', room);
  ok('subscription limit');
  ws.ws.close();

  [ws] = await welcomed(astroUrl);
  const started = performance.now();
  for (let i = 0; i < 150; i += 1) ws.send(sub('channel.activities', OWNER, 'channel-1', 'apikey', `r-${i}`));
  const replies = [];
  for (let i = 0; i < 150; i += 1) replies.push(await ws.next());
  const elapsed = (performance.now() - started) / 1000;
  const passed = replies.filter((r) => !('error' in r));
  const limited = replies.filter((r) => r.error === 'rate_limit_exceeded');
  assert.equal(passed.length + limited.length, 150, show(replies.filter((r) => 'error' in r && !limited.includes(r))));
  assert.ok(limited.length > 0, '150 requests at once and no rate_limit_exceeded');
  for (const reply of limited) assert.ok(!('nonce' in reply) && reply.data.message === 'rate limit exceeded', show(reply));
  assert.deepEqual(replies.slice(0, 100).map((r) => r.nonce), [...Array(100).keys()].map((i) => `r-${i}`), 'the first 100 were not all served');
  const numbers = passed.map((r) => Number(r.nonce.slice(2)));
  assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), 'responses out of order');
  for (const reply of passed) expectResponse(reply, reply.nonce, SUBSCRIBED, 'channel.activities', 'channel-1');
  assert.ok(passed.length <= 100 + 10 * elapsed + 1, `${passed.length} served in ${elapsed} s`);
  await sleep(1100); // the bucket refills at 10/s: this wait is the behaviour under test
  await ws.subscribe('channel.tips', OWNER, 'channel-1');
  ok('rate limit');
  ws.ws.close();
}

async function routing() {
  const c = {};
  [c.a] = await welcomed(astroUrl);
  await c.a.subscribe('channel.activities', OWNER, 'channel-1');
  [c.b] = await welcomed(astroUrl);
  await c.b.subscribe('channel.activities', ROOM2, '', 'apikey', 'channel-2');
  const eventId = await inject(follow('channel-1'));
  const frame = await expectFollow(c.a, 'channel-1', eventId);
  const at = frame.data.createdAt;
  assert.ok(typeof at === 'string' && MS.test(at) && frame.ts === `${at.slice(0, 19)}Z`, show(frame));
  assert.deepEqual(frame.data, {
    _id: eventId, channel: 'channel-1', type: 'follow', provider: 'twitch', createdAt: at, updatedAt: at,
    data: { username: 'alice', displayName: 'Alice', providerId: '12345' },
  });
  ok('follow reaches its room');
  await expectFollow(c.b, 'channel-2', await inject(follow('channel-2'))); // the marker comes first
  ok('follow does not reach another room');
  await inject(follow());
  await quiet(c);
  ok('no room reaches nobody');

  await c.a.subscribe('channel.tips', OWNER, 'channel-1');
  await expectDonation(c.a, await inject(DONATION));
  await quiet(c);
  ok('donation');

  await c.a.subscribe('channel.chat.message', OWNER, 'channel-1');
  const chat = {
    text: 'héllo ✨', nick: 'alice', badges: [{ type: 'moderator', version: '1' }],
    emotes: [], bits: 0, color: null, first: true, meta: { ratio: 1.5 },
  };
  await inject({ source: 'twitch', type: 'chat', room: 'channel-1', user: { id: '12345', username: 'alice', nickname: 'Alice' }, data: chat });
  assert.deepEqual((await c.a.notification('channel.chat.message', 'channel-1')).data, chat);
  await quiet(c);
  ok('chat');

  await c.a.subscribe('channel.overlay.broadcast', OWNER, 'channel-1');
  for (const kind of ['channel.overlay.broadcast', 'channel_overlay_broadcast']) {
    const data = { target: 'global', event: 'confetti', data: { count: 50 }, kind };
    await inject({ source: 'rules', type: kind, room: 'channel-1', data });
    assert.deepEqual((await c.a.notification('channel.overlay.broadcast', 'channel-1')).data, data);
  }
  await quiet(c); // nothing reached channel.activities, channel.tips or channel.chat.message
  ok('overlay broadcast');
  c.a.ws.close();
  c.b.ws.close();
}

async function unsubscribing() {
  const [ws] = await welcomed(astroUrl);
  await ws.subscribe('channel.activities', OWNER, 'channel-1');
  await ws.subscribe('channel.activities', ROOM2, 'channel-2', 'apikey', 'channel-2');
  await ws.subscribe('channel.chat.message', OWNER, 'channel-1');
  await ws.unsubscribe('channel.activities', 'channel-1');
  await inject(follow('channel-1'));
  await expectFollow(ws, 'channel-2', await inject(follow('channel-2')));
  ok('unsubscribe with a room');

  await ws.unsubscribe('channel.activities');
  await inject(follow('channel-1'));
  await inject(follow('channel-2'));
  const marker = { text: 'marker after the unsubscribe' };
  await inject({ source: 'twitch', type: 'chat', room: 'channel-1', data: marker });
  const frame = await ws.notification('channel.chat.message', 'channel-1');
  assert.deepEqual(frame.data, marker, `another notification came first: ${show(frame)}`);
  ok('unsubscribe without a room');

  await ws.unsubscribe('channel.tips', 'channel-3');
  await ws.unsubscribe('channel.giveaways');
  await ws.unsubscribe('channel.activities', '');
  await ws.unsubscribe('channel.activities', 'channel-1');
  ok('unsubscribe never subscribed');

  ws.ws.send(Buffer.from('\u0000\u0001 binary, not a request'), { binary: true });
  await ws.unsubscribe('channel.songrequest', 'channel-1'); // its response must be the next frame
  ok('binary frame ignored');
  ws.ws.close();

  // Every frame went through checkEnvelope; make sure the notifications were many.
  assert.ok(seen.notifications >= 15, `only ${seen.notifications} notifications checked`);
  ok('notification envelope');
}

// ---- scenarios ----------------------------------------------------------------------------------
async function checklist() {
  for (const part of [subscribing, malformed, limits, routing, unsubscribing]) await part();
}

async function shutdown() {
  const [ws] = await welcomed(astroUrl);
  await ws.subscribe('channel.activities', OWNER, 'channel-1');
  await ws.subscribe('channel.tips', OWNER, 'channel-1');
  ok('subscribed');
  const frame = await ws.event(60_000);
  assert.ok(!('close' in frame), `closed ${show(frame)} without a reconnect message`);
  assert.equal(frame.type, 'reconnect', `expected reconnect, got ${show(frame)}`);
  assert.equal(frame.data.message, 'The server is shutting down.');
  const token = frame.data.reconnect_token;
  assert.ok(typeof token === 'string' && JWT.test(token), `not a compact JWT: ${show(frame)}`);
  const closing = await ws.event();
  assert.deepEqual(closing, { close: 1001, reason: 'Server shutting down' }, `expected Close 1001, got ${show(closing)}`);
  console.log(`token ${token}`);
  ok('reconnect');
}

function withToken(token) {
  const url = new URL(astroUrl);
  url.searchParams.set('reconnect_token', token);
  return url.href;
}

async function restore() {
  assert.ok(givenToken, 'restore needs the token printed by the shutdown scenario');
  const [ws] = await welcomed(withToken(givenToken));
  await expectFollow(ws, 'channel-1', await inject(follow('channel-1'))); // no subscribe sent
  await expectDonation(ws, await inject(DONATION));
  ok('restored');
  const [header, payload, signature] = givenToken.split('.');
  const tampered = `${header}.${payload}.${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
  const bad = await connect(withToken(tampered));
  const first = await bad.event();
  assert.deepEqual(first, { close: 1008, reason: 'Invalid reconnect token' }, `expected Close 1008 and no welcome, got ${show(first)}`);
  ok('tampered');
  const [empty] = await welcomed(withToken(''));
  ok('empty');
  ws.ws.close();
  empty.ws.close();
}

const scenarios = { checklist, shutdown, restore };
if (!scenarios[scenario] || !astroUrl || !httpUrl) {
  console.error('usage: node astro.mjs checklist|shutdown|restore <astro-url> <http-url> [token]');
  process.exit(2);
}
try {
  await scenarios[scenario]();
  process.exit(0);
} catch (error) {
  console.error(error);
  console.error(`FAIL ${scenario}, after 'ok ${seen.last}': ${String(error.message).replace(/\s*\n\s*/g, ' ')}`);
  process.exit(1);
}
