// Drives Switchboard's custom (VMSC) face with the `ws` package.
// Usage: node custom.mjs <scenario> <ws-url> <token>
// Scenarios: auth, events. Prints "ok <step>" lines; exits non-zero on the first failure.
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const [scenario, url, token] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;

function ok(step) {
  console.log(`ok ${step}`);
}

/// A connection with a queue of received JSON frames and its close.
function connect(target, headers = {}) {
  const ws = new WebSocket(target, { headers });
  const frames = [];
  const waiting = [];
  ws.on('message', (data, binary) => {
    const frame = JSON.parse(data.toString());
    const next = waiting.shift();
    if (next) next(frame);
    else frames.push(frame);
  });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  const next = () => {
    let timer;
    const frame = frames.length ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve));
    const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no frame in time')), TIMEOUT_MS); });
    return Promise.race([frame, timeout]).finally(() => clearTimeout(timer));
  };
  const send = (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  return { ws, next, send, closed, opened };
}

const bearer = (value) => ({ Authorization: `Bearer ${value}` });

async function auth() {
  for (const [name, target, headers] of [
    ['header', url, bearer(token)],
    ['query', `${url}?token=${encodeURIComponent(token)}`, {}],
  ]) {
    const client = connect(target, headers);
    await client.opened;
    client.send({ action: 'subscribe' });
    assert.equal((await client.next()).status, 'ok');
    client.ws.close();
    ok(name);
  }
  for (const [name, target, headers] of [
    ['missing', url, {}],
    ['wrong query', `${url}?token=nope`, {}],
    ['wrong header', url, bearer('nope')],
  ]) {
    const client = connect(target, headers);
    assert.deepEqual(await client.next(), { action: 'error', code: 'AUTH_FAILED', message: 'Invalid or missing token' });
    assert.deepEqual(await client.closed, { code: 4401, reason: 'Unauthorized' });
    ok(name);
  }
}

async function events() {
  const boss = connect(url, bearer(token));
  const other = connect(url, bearer(token));
  const game = connect(url, bearer(token));
  await Promise.all([boss.opened, other.opened, game.opened]);
  boss.send({ action: 'subscribe', eventTypes: ['BossDown'], sources: ['MyGame'] });
  assert.deepEqual(await boss.next(), { action: 'subscribe', status: 'ok', eventTypes: ['BossDown'], sources: ['MyGame'] });
  other.send({ action: 'subscribe', eventTypes: ['marker'] });
  assert.equal((await other.next()).status, 'ok');
  game.send({ action: 'subscribe', eventTypes: ['boss_defeated'], sources: ['mygame'] });
  assert.equal((await game.next()).status, 'ok');
  ok('subscribe');

  game.send({ action: 'injectEvent', event: { type: 'boss_defeated', source: 'mygame', user: { id: 7, username: 'speedy' }, data: { boss: 'Dragon' } } });
  const ack = await game.next();
  assert.equal(ack.action, 'injectEvent');
  assert.equal(ack.status, 'ok');
  assert.match(ack.eventId, /^[0-9a-f-]{36}$/);
  const own = await game.next();
  assert.equal(own.event.id, ack.eventId, 'the ack precedes the injector\'s own copy');
  assert.deepEqual(own.event.user, { id: '7', username: 'speedy', nickname: '' });
  assert.equal(typeof own.event.timestamp, 'number');
  ok('inject');

  const down = await boss.next();
  assert.equal(down.action, 'event');
  assert.equal(down.event.type, 'boss_down');
  assert.equal(down.event.source, 'mygame');
  assert.deepEqual(down.event.data, { boss: 'Dragon', by: 'speedy' });
  ok('rule fired for the matching filter');

  game.send({ action: 'injectEvent', event: { type: 'marker', source: 'test' } });
  await game.next();
  assert.equal((await other.next()).event.type, 'marker', 'the non-matching subscriber received nothing before the marker');
  ok('nothing for a non-matching filter');

  game.send({ action: 'triggerRule', ruleName: 'Boss down' });
  assert.deepEqual(await game.next(), { action: 'triggerRule', status: 'ok', ruleId: '01JCWXWCBYB6WK952SWA0432CF', ruleName: 'Boss down' });
  assert.equal((await boss.next()).event.type, 'boss_down');
  game.send({ action: 'triggerRule', ruleId: '01JCWXWCBYB6WK952SWA0432CF' });
  assert.equal((await game.next()).ruleName, 'Boss down');
  assert.equal((await boss.next()).event.type, 'boss_down');
  ok('triggerRule by name and id');

  const errors = [
    [{ action: 'triggerRule', ruleName: 'Nope' }, 'RULE_NOT_FOUND', "No rule with ruleName 'Nope'"],
    [{ action: 'triggerRule', ruleId: '01JD3Q5S8N0W4X7Y2Z6A9B1C99' }, 'RULE_NOT_FOUND', "No rule with ruleId '01JD3Q5S8N0W4X7Y2Z6A9B1C99'"],
    [{ action: 'triggerRule', ruleName: 'Sleeping rule' }, 'RULE_NOT_FOUND', "Rule 'Sleeping rule' is disabled"],
    [{ action: 'triggerRule' }, 'INVALID_PAYLOAD', 'ruleId or ruleName is required'],
    [{ action: 'foo' }, 'INVALID_ACTION', "Unknown action 'foo'"],
    [{}, 'INVALID_ACTION', null],
    ['hello', 'INVALID_PAYLOAD', null],
    ['[1]', 'INVALID_PAYLOAD', null],
    [{ action: 'injectEvent', event: { source: 'x' } }, 'INVALID_PAYLOAD', 'event.type must be a non-empty string'],
    [{ action: 'injectEvent', event: { type: 'x', data: 'text' } }, 'INVALID_PAYLOAD', 'event.data must be an object'],
    [{ action: 'injectEvent', event: { type: 'x', user: { id: {} } } }, 'INVALID_PAYLOAD', 'event.user.id must be a string, number or boolean'],
    [{ action: 'subscribe', eventTypes: 'gift' }, 'INVALID_PAYLOAD', 'eventTypes must be an array of strings'],
  ];
  for (const [message, code, text] of errors) {
    game.send(message);
    const reply = await game.next();
    assert.equal(reply.action, 'error', JSON.stringify(message));
    assert.equal(reply.code, code, JSON.stringify(message));
    if (text) assert.equal(reply.message, text);
  }
  game.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await game.next()).code, 'INVALID_PAYLOAD');
  game.send({ action: 'subscribe', sources: ['mygame'] });
  assert.equal((await game.next()).status, 'ok');
  ok('bad input matrix');
  for (const client of [boss, other, game]) client.ws.close();
}

try {
  await { auth, events }[scenario]();
  process.exit(0);
} catch (error) {
  console.error(error);
  process.exit(1);
}
