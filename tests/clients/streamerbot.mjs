// Drives the official @streamerbot/client against a running Switchboard.
// Usage: node streamerbot.mjs <scenario> <ws-url> <http-url> [password]
// Prints one "ok <step>" line per check; exits non-zero (with the reason) on the first failure.
import assert from 'node:assert/strict';
import { StreamerbotClient } from '@streamerbot/client';

const [scenario, wsUrl, httpUrl, password] = process.argv.slice(2);
const url = new URL(wsUrl);
const TIMEOUT_MS = 10_000;

function ok(step) {
  console.log(`ok ${step}`);
}

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function inject(event) {
  const response = await fetch(new URL('/events', httpUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.SWITCHBOARD_TOKEN}` },
    body: JSON.stringify(event),
  });
  const body = await response.json();
  assert.equal(body.status, 'ok', JSON.stringify(body));
  return body.eventId;
}

function client(options = {}) {
  let resolveConnect;
  let rejectConnect;
  const connected = new Promise((resolve, reject) => {
    resolveConnect = resolve;
    rejectConnect = reject;
  });
  const sb = new StreamerbotClient({
    scheme: url.protocol.slice(0, -1), // ws or wss
    host: url.hostname,
    port: Number(url.port),
    endpoint: url.pathname,
    immediate: false,
    autoReconnect: false,
    logLevel: 'none',
    onConnect: (info) => resolveConnect(info),
    onError: (error) => rejectConnect(error),
    ...options,
  });
  return { sb, connected };
}

/// A queue of event payloads received by one listener.
function listen(sb, name) {
  const received = [];
  const waiting = [];
  sb.on(name, (payload) => {
    const next = waiting.shift();
    if (next) next(payload);
    else received.push(payload);
  });
  return () => within(
    received.length ? Promise.resolve(received.shift()) : new Promise((resolve) => waiting.push(resolve)),
    `an event on ${name}`,
  );
}

async function noPassword() {
  const { sb, connected } = client();
  const follows = listen(sb, 'Twitch.Follow');
  const customs = listen(sb, 'General.Custom');
  await sb.connect();
  const info = await within(connected, 'onConnect');
  assert.equal(info.name, 'Switchboard');
  assert.equal(info.source, 'websocketServer');
  ok('connect');

  const got = await sb.getInfo();
  assert.equal(got.status, 'ok');
  assert.equal(got.info.instanceId, info.instanceId);
  ok('getInfo');

  const events = await sb.getEvents();
  assert.ok(events.events.Twitch.includes('Follow'));
  assert.ok(Object.keys(events.events).every((key) => !/^[a-z]/.test(key)));
  ok('getEvents');

  const actions = await sb.getActions();
  assert.equal(actions.count, actions.actions.length);
  assert.deepEqual(actions.actions.map((a) => a.name), ['Celebrate', 'Reply', 'Sleeping']);
  ok('getActions');

  const byName = await sb.doAction({ name: 'Celebrate' }, { boss: 'Dragon', hp: 0 });
  assert.equal(byName.status, 'ok');
  let custom = await customs();
  assert.deepEqual(custom.data, { event: 'celebrate', boss: 'Dragon', hp: 0 });
  assert.equal(custom.event.source, 'General');
  ok('doAction by name');

  const byId = await sb.doAction(actions.actions[0].id, { boss: 'Lich', hp: 3 });
  assert.equal(byId.status, 'ok');
  custom = await customs();
  assert.equal(custom.data.boss, 'Lich');
  ok('doAction by id');

  await assert.rejects(sb.doAction({ name: 'Nope' }), /Request failed/);
  ok('doAction unknown');

  const response = await sb.doAction({ name: 'Reply' }, { answer: 42 }, { customEventResponse: true });
  assert.equal(response.customEventResponseArgs.answer, 42);
  ok('doAction customEventResponse');

  const filled = await sb.testCredits();
  assert.deepEqual(filled.events.follows, ['TestUser1', 'TestUser2', 'TestUser3']);
  const credits = await sb.getCredits();
  assert.deepEqual(credits.events.follows, ['TestUser1', 'TestUser2', 'TestUser3']);
  await sb.clearCredits();
  const cleared = await sb.getCredits();
  assert.deepEqual(cleared.events.follows, []);
  ok('credits');

  const viewers = await sb.getActiveViewers();
  assert.deepEqual([viewers.count, viewers.viewers], [0, []]);
  const broadcaster = await sb.getBroadcaster();
  const shape = { platforms: broadcaster.platforms, connected: broadcaster.connected, disconnected: broadcaster.disconnected };
  assert.deepEqual(shape, { platforms: {}, connected: [], disconnected: [] });
  ok('platform requests');

  // A cheer is published first; the listener only ever sees the follow.
  await inject({ source: 'twitch', type: 'cheer', data: { bits: 1 } });
  const id = await inject({ source: 'twitch', type: 'follow', user: { nickname: 'Alice' }, data: { user_name: 'Alice' } });
  const follow = await follows();
  assert.equal(follow.event.source, 'Twitch');
  assert.equal(follow.event.type, 'Follow');
  assert.equal(follow.event.id, id);
  assert.deepEqual(follow.data, { user_name: 'Alice' });
  ok('event');

  const after = await sb.getCredits();
  assert.deepEqual(after.events.follows, ['Alice']);
  ok('follow credited');
  await sb.disconnect();
}

async function rightPassword() {
  const { sb, connected } = client({ password });
  const follows = listen(sb, 'Twitch.Follow');
  await sb.connect();
  await within(connected, 'onConnect');
  const id = await inject({ source: 'twitch', type: 'follow', data: {} });
  const follow = await follows();
  assert.equal(follow.event.id, id);
  ok('authenticated event');
  await sb.disconnect();
}

async function wrongPassword() {
  let connects = 0;
  const { sb, connected } = client({ password, autoReconnect: true, onConnect: () => { connects += 1; } });
  await sb.connect();
  await assert.rejects(within(connected, 'onError'), /Request failed/);
  ok('refused');
  // Proving that no second connection opens needs a short wait for its absence.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(connects, 0);
  ok('no reconnect');
}

async function ruleEmit() {
  const { sb, connected } = client();
  const downs = listen(sb, 'Mygame.BossDown');
  await sb.connect();
  await within(connected, 'onConnect');
  await inject({ source: 'mygame', type: 'boss_defeated', user: { id: 'p1', nickname: 'Speedy' }, data: { boss: 'Dragon' } });
  const down = await downs();
  assert.equal(down.event.source, 'Mygame');
  assert.equal(down.event.type, 'BossDown');
  assert.deepEqual(down.data, { boss: 'Dragon', by: 'Speedy' });
  ok('rule emit');
  await sb.disconnect();
}

async function customInject() {
  const [customUrl, token] = process.argv.slice(5);
  const { sb, connected } = client();
  const follows = listen(sb, 'Twitch.Follow');
  await sb.connect();
  await within(connected, 'onConnect');
  const { default: WebSocket } = await import('ws');
  const game = new WebSocket(customUrl, { headers: { Authorization: `Bearer ${token}` } });
  const ack = new Promise((resolve) => game.on('message', (data) => resolve(JSON.parse(data.toString()))));
  await new Promise((resolve, reject) => { game.on('open', resolve); game.on('error', reject); });
  game.send(JSON.stringify({ action: 'injectEvent', event: { type: 'follow', source: 'twitch', data: { user_name: 'Dana' } } }));
  const { eventId } = await within(ack, 'the inject ack');
  const follow = await follows();
  assert.equal(follow.event.id, eventId);
  assert.deepEqual(follow.data, { user_name: 'Dana' });
  ok('custom inject reached the official client');
  game.close();
  await sb.disconnect();
}

// A configured broadcaster is answered as written (the server runs with the Twitch and YouTube
// identities of docs/streamerbot.md §4.9).
async function broadcaster() {
  const { sb, connected } = client();
  await sb.connect();
  await within(connected, 'onConnect');
  const answer = await sb.getBroadcaster();
  assert.deepEqual(answer.platforms.twitch, {
    broadcastUser: 'MyChannel', broadcastUserName: 'mychannel', broadcastUserId: 695682330,
    broadcasterIsAffiliate: false, broadcasterIsPartner: false,
  });
  assert.deepEqual(answer.platforms.youtube, { broadcastUserName: 'My Channel', broadcastUserId: 'UCl3oatIf9tYopHaZHvnH3xw' });
  assert.deepEqual([...answer.connected].sort(), ['twitch', 'youtube']);
  assert.deepEqual(answer.disconnected, []);
  ok('broadcaster');
  await sb.disconnect();
}

// A name no list has, first injected in lower case, then in Streamer.bot's PascalCase: the
// listener for the PascalCase name hears the second.
async function pascalCaseWins() {
  const { sb, connected } = client();
  const heard = listen(sb, 'Twitch.CustomWidgetThing');
  await sb.connect();
  await within(connected, 'onConnect');
  await inject({ source: 'twitch', type: 'customwidgetthing', data: { n: 1 } });
  const id = await inject({ source: 'Twitch', type: 'CustomWidgetThing', data: { n: 2 } });
  const event = await heard();
  assert.equal(event.event.id, id);
  assert.equal(event.event.type, 'CustomWidgetThing');
  ok('pascal case wins');
  await sb.disconnect();
}

const scenarios = {
  broadcaster,
  'pascal-case-wins': pascalCaseWins,
  'no-password': noPassword,
  'right-password': rightPassword,
  'wrong-password': wrongPassword,
  'rule-emit': ruleEmit,
  'custom-inject': customInject,
};
try {
  await scenarios[scenario]();
  process.exit(0);
} catch (error) {
  console.error(error);
  process.exit(1);
}
