// Drives Switchboard's dashboard in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core. Usage: node dashboard.mjs <scenario> <http-url> <screenshots-dir> [args…]
// Scenarios: feed, try <action>, rate <custom-ws-url> <token>, rules <rule-file> <rule-id>,
// connections (waits for a line "foreign up" on stdin between its two steps), token <wrong-token>
// (a server beyond loopback: the page asks for the admin token), cross-origin (a page of another
// site tries to change things).
// Prints "ok <step>" lines (and "metric <json>"); exits non-zero on the first failure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const [scenario, base, shots, ...rest] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;
const origin = new URL(base).origin;

function ok(step) {
  console.log(`ok ${step}`);
}

async function post(route, body) {
  const response = await fetch(new URL(route, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.SWITCHBOARD_TOKEN}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A 1366×768 page of the dashboard that fails the run if it asks anything of another origin. */
async function open(browser, page = 'live') {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const tab = await context.newPage();
  tab.setDefaultTimeout(TIMEOUT_MS);
  const foreign = [];
  tab.on('request', (request) => {
    const url = new URL(request.url());
    if (url.origin !== origin && !(url.protocol === 'ws:' && url.host === new URL(base).host)) foreign.push(request.url());
  });
  const errors = [];
  tab.on('pageerror', (error) => errors.push(error.message));
  // API answers (fetch) may be errors on purpose; the page's own files may not.
  tab.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text());
  });
  tab.on('response', (response) => {
    if (response.status() >= 400 && response.request().resourceType() !== 'fetch') errors.push(`${response.status()} ${response.url()}`);
  });
  await tab.goto(`${base}#/${page}`);
  await tab.getByText('Connected', { exact: true }).waitFor();
  tab.checkClean = () => {
    assert.deepEqual(foreign, [], 'no request leaves the server');
    assert.deepEqual(errors, [], 'no script error');
  };
  return tab;
}

async function screenshot(tab, name) {
  await tab.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function feed(browser) {
  const tab = await open(browser);
  const answer = await post('/events', { source: 'mygame', type: 'boss_defeated', user: { username: 'alice' }, room: 'arena', data: { boss: 'Dragon' } });
  assert.equal(answer.status, 200);
  const row = tab.locator(`#live-rows tr[data-id="${answer.body.eventId}"]`);
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.deepEqual(cells.slice(1), ['mygame', 'boss_defeated', 'alice', 'arena', '{"boss":"Dragon"}']);
  ok('event shown');
  // Filtering by source hides the others; pausing holds events until resumed.
  await post('/events', { source: 'twitch', type: 'follow', user: { username: 'bob' }, data: {} });
  await tab.locator('#live-rows tr').nth(1).waitFor();
  await tab.locator('#page-live').getByLabel('Source').fill('twitch');
  await tab.locator('#live-rows tr').nth(0).getByText('twitch').waitFor();
  assert.equal(await tab.locator('#live-rows tr').count(), 1);
  await tab.locator('#page-live').getByLabel('Source').fill('');
  ok('filter');
  await tab.getByRole('button', { name: 'Pause' }).click();
  const held = await post('/events', { source: 'mygame', type: 'held', data: {} });
  await tab.locator('#live-held').getByText('1').waitFor();
  assert.equal(await tab.locator(`#live-rows tr[data-id="${held.body.eventId}"]`).count(), 0);
  await tab.getByRole('button', { name: 'Resume' }).click();
  await tab.locator(`#live-rows tr[data-id="${held.body.eventId}"]`).waitFor();
  ok('pause');
  for (const [source, type, user, data] of [
    ['twitch', 'cheer', 'carol', { bits: 500, message: 'cheer500 GG' }],
    ['tiktok', 'gift', 'dave', { giftName: 'Rose', repeatCount: 5 }],
    ['youtube', 'superchat', 'erin', { amount: '5.00', currency: 'EUR' }],
  ]) {
    await post('/events', { source, type, user: { username: user }, data });
  }
  await tab.locator('#live-rows tr').nth(5).waitFor();
  await screenshot(tab, 'live');
  // The keyboard alone: the skip link first, then the pages in order; Enter opens one.
  await tab.reload();
  await tab.getByText('Connected', { exact: true }).waitFor();
  await tab.keyboard.press('Tab');
  assert.equal(await tab.evaluate(() => document.activeElement.textContent), 'Skip to the page');
  await tab.keyboard.press('Tab');
  await tab.keyboard.press('Tab');
  assert.equal(await tab.evaluate(() => document.activeElement.textContent), 'Try it');
  await tab.keyboard.press('Enter');
  await tab.locator('#try-title').waitFor();
  assert.equal(await tab.evaluate(() => document.activeElement.id), 'try-title', 'the page heading takes the focus');
  ok('keyboard');
  tab.checkClean();
  ok('clean');
}

async function tryIt(browser) {
  const tab = await open(browser, 'try');
  const form = tab.locator('#try-event');
  await form.getByLabel('Source').fill('mygame');
  await form.getByLabel('Type').fill('level_up');
  await form.getByLabel('User name').fill('player1');
  await form.getByLabel('Data (JSON)').fill('{"level": 7}');
  await form.getByRole('button', { name: 'Publish the event' }).click();
  await tab.locator('#try-event-result').getByText('Published').waitFor();
  await form.getByLabel('Data (JSON)').fill('{oops');
  await form.getByRole('button', { name: 'Publish the event' }).click();
  await tab.locator('#try-event-result').getByText('not JSON').waitFor();
  ok('inject');
  const action = tab.locator('#try-action');
  await action.getByLabel('Action name').fill('No such action');
  await action.getByRole('button', { name: 'Run the action' }).click();
  await tab.locator('#try-action-result').getByText('Action not found').waitFor();
  await action.getByLabel('Action name').fill(rest[0]);
  await action.getByRole('button', { name: 'Run the action' }).click();
  await tab.locator('#try-action-result').getByText('Started').waitFor();
  ok('action');
  await screenshot(tab, 'try');
  await tab.goto(`${base}#/live`);
  await tab.locator('#live-rows tr td', { hasText: 'level_up' }).first().waitFor({ state: 'attached' });
  tab.checkClean();
  ok('clean');
}

/** Injects 1,000 events a second for 10 s through the custom face while the feed is shown. */
async function rate(browser) {
  const [customUrl, token, perSecondText] = rest;
  const perSecond = Number(perSecondText ?? 1000);
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const tab = await context.newPage();
  await tab.addInitScript(() => {
    window.__perf = { longest: 0, longTasks: 0, longestFrame: 0, longestDraw: 0, drawMs: 0 };
    // How long the page's own drawing takes, per frame (the script part of a frame).
    const raf = window.requestAnimationFrame.bind(window);
    window.requestAnimationFrame = (callback) => raf((now) => {
      const start = performance.now();
      callback(now);
      if (window.__perf.measuring) {
        window.__perf.longestDraw = Math.max(window.__perf.longestDraw, performance.now() - start);
        window.__perf.drawMs += performance.now() - start;
      }
    });
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        window.__perf.longTasks++;
        window.__perf.longest = Math.max(window.__perf.longest, entry.duration);
      }
    }).observe({ type: 'longtask', buffered: true });
    let last = 0;
    const frame = (now) => {
      if (last && window.__perf.measuring) window.__perf.longestFrame = Math.max(window.__perf.longestFrame, now - last);
      last = now;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  await tab.goto(`${base}#/live`);
  await tab.getByText('Connected', { exact: true }).waitFor({ timeout: TIMEOUT_MS });
  await tab.evaluate(() => { window.__perf = { ...window.__perf, longest: 0, longTasks: 0, longestFrame: 0, longestDraw: 0, drawMs: 0, measuring: true }; });
  const ws = new WebSocket(customUrl, { headers: { Authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  let acked = 0;
  ws.on('message', (data) => { if (JSON.parse(data.toString()).action === 'injectEvent') acked++; });
  const total = perSecond * 10;
  const started = Date.now();
  let sent = 0;
  while (sent < total || Date.now() - started < 10_000) {
    const due = Math.min(total, Math.floor((Date.now() - started) / 1000 * perSecond) + 10);
    for (; sent < due; sent++) {
      ws.send(JSON.stringify({ action: 'injectEvent', event: { source: 'load', type: 'tick', user: { username: `viewer${sent % 50}` }, data: { n: sent } } }));
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const injectedIn = Date.now() - started;
  const deadline = Date.now() + 30_000;
  let received = 0;
  while (Date.now() < deadline) {
    received = Number(await tab.locator('#live-received').textContent());
    if (received >= total) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const perf = await tab.evaluate(() => window.__perf);
  const rows = await tab.locator('#live-rows tr').count();
  const newest = total ? await tab.locator('#live-rows tr').first().locator('td').nth(5).textContent() : null;
  console.log(`metric ${JSON.stringify({ injected: total, injectedInMs: injectedIn, acked, received, rows, newest, longestTaskMs: perf.longest, longTasks: perf.longTasks, longestFrameMs: Math.round(perf.longestFrame), longestDrawMs: Math.round(perf.longestDraw), drawMsTotal: Math.round(perf.drawMs) })}`);
  assert.equal(received, total, 'every event reached the page');
  if (total) assert.equal(newest, `{"n":${total - 1}}`, 'the newest event is on top');
  assert.ok(rows <= 500, 'the table is capped');
  ok('rate');
  ws.close();
}

/** Clicks a trace list's Refresh until `check` holds on the traces' text. */
async function traces(tab, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    await tab.getByRole('button', { name: 'Refresh the traces', exact: true }).click();
    await tab.locator('#rules-traces-count').getByText('trace').waitFor();
    const texts = await tab.locator('#rules-traces > li').allTextContents();
    if (check(texts)) return texts;
    assert.ok(Date.now() < deadline, `traces never matched: ${JSON.stringify(texts)}`);
    await tab.waitForTimeout(100);
  }
}

/** Edit with an error, fix, read why it did not fire, disable. */
async function rules(browser) {
  const [file, id] = rest;
  const tab = await open(browser, 'rules');
  const page = tab.locator('#page-rules');
  await page.getByRole('button', { name: 'Level up' }).click();
  await tab.locator('#rules-name').getByText('Level up').waitFor();
  const editor = tab.locator('#rules-text');
  const before = fs.readFileSync(file, 'utf8');
  const text = await editor.inputValue();
  const broken = text.replace('"op": "gte"', '"op": "bigger"');
  assert.notEqual(broken, text);
  await editor.fill(broken);
  await page.getByRole('button', { name: 'Save' }).click();
  await tab.locator('#rules-saved').getByText('Not saved').waitFor();
  const line = broken.split('\n').findIndex((l) => l.includes('"bigger"')) + 1;
  const error = tab.locator('#rules-errors li').first();
  await error.getByText(`Line ${line}`).waitFor();
  assert.match(await error.textContent(), /\/conditions\/all\/0\/op: .*bigger/);
  assert.match(await tab.locator('#rules-gutter .ln.err').textContent(), new RegExp(`⚠ ${line}\\b`));
  assert.match(await tab.locator('#rules-notes .note').nth(line - 1).textContent(), /bigger/);
  assert.equal(fs.readFileSync(file, 'utf8'), before, 'the stored file is unchanged');
  ok('error shown');
  await screenshot(tab, 'rules-error');
  await editor.fill(text.replace('"value": 10', '"value": 8'));
  await page.getByRole('button', { name: 'Save' }).click();
  await tab.locator('#rules-saved').getByText('Saved', { exact: true }).waitFor();
  assert.equal(await tab.locator('#rules-errors li').count(), 0);
  assert.match(fs.readFileSync(file, 'utf8'), /"value": 8/);
  ok('fixed');
  const low = await post('/events', { source: 'mygame', type: 'level_up', user: { username: 'speedy' }, data: { level: 3 } });
  assert.equal(low.status, 200);
  const [latest] = await traces(tab, (texts) => texts.length >= 1);
  assert.match(latest, /^filtered/);
  const failed = tab.locator('#rules-traces > li').first().locator('li.failed li.failed').first();
  assert.match(await failed.textContent(), /event\.data\.level gte 8 — saw 3 → ✗ false/);
  ok('trace');
  await tab.locator('#rules-detail').evaluate((pane) => { pane.scrollTop = pane.scrollHeight; });
  await screenshot(tab, 'rules');
  await post('/events', { source: 'mygame', type: 'level_up', user: { username: 'speedy' }, data: { level: 12 } });
  await traces(tab, (texts) => texts[0].startsWith('completed'));
  ok('fires');
  await page.getByRole('button', { name: 'Run its tests' }).click();
  await tab.locator('#rules-tests-result').getByText('1 passed, 0 failed').waitFor();
  ok('own tests');
  await page.getByRole('button', { name: 'Disable' }).click();
  await tab.locator('#rules-saved').getByText('Disabled and saved').waitFor();
  assert.match(fs.readFileSync(file, 'utf8'), /"enabled": false/);
  const count = (await tab.locator('#rules-traces > li').count());
  // Enabled, this event would leave a `filtered` trace before its POST is answered.
  await post('/events', { source: 'mygame', type: 'level_up', user: { username: 'speedy' }, data: { level: 3 } });
  await traces(tab, (texts) => texts.length === count);
  const row = page.locator('#rules-rows tr', { hasText: 'Level up' });
  await row.locator('td', { hasText: /^no$/ }).waitFor();
  ok('disabled');
  // A disabled rule's own test no longer matches; then a dry run of that test.
  await page.getByRole('button', { name: 'Run its tests' }).click();
  await tab.locator('#rules-tests-result').getByText('0 passed, 1 failed').waitFor();
  assert.match(await tab.locator('#rules-tests-result li').textContent(), /level 12 cheers: \/expect\/outcome: expected "completed", got "noMatch"/);
  ok('own tests fail when disabled');
  await page.getByLabel('Input').selectOption({ label: 'level 12 cheers' });
  await page.getByRole('button', { name: 'Dry run' }).click();
  await tab.locator('#rules-dry-result').getByText('Dry run:').waitFor();
  ok('dry run');
  tab.checkClean();
  ok('clean');
}

/** An outbound link shown down turns up once its server is there; inbound sessions are listed. */
async function connections(browser) {
  const tab = await open(browser, 'connections');
  const link = tab.locator('#connections-outbound tr[data-name="mygame"]');
  await link.locator('.badge', { hasText: 'error' }).waitFor();
  assert.notEqual(await link.locator('td').nth(3).textContent(), '', 'the last error is shown');
  const inbound = tab.locator('#connections-inbound');
  await inbound.locator('tr', { hasText: 'streamerbot' }).getByText('twitch/follow').waitFor();
  await inbound.locator('tr', { hasText: 'dashboard' }).getByText('*/*').waitFor();
  ok('down');
  const input = readline.createInterface({ input: process.stdin });
  for await (const line of input) if (line === 'foreign up') break;
  input.close();
  process.stdin.destroy();
  await tab.getByRole('button', { name: 'Reconnect mygame' }).click();
  await tab.locator('#connections-result').getByText('Redialling mygame').waitFor();
  await link.locator('.badge', { hasText: 'connected' }).waitFor();
  ok('up');
  await screenshot(tab, 'connections');
  tab.checkClean();
  ok('clean');
}

/** Credits and variables, searched. */
async function state(browser) {
  for (const user of ['alice', 'bob']) {
    await post('/events', { source: 'twitch', type: 'follow', user: { id: user, username: user }, data: {} });
  }
  await post('/events', { source: 'tiktok', type: 'gift', user: { id: 'u7', username: 'carol' }, data: { diamondCount: 30, repeatCount: 2 } });
  const tab = await open(browser, 'state');
  const page = tab.locator('#page-state');
  await page.locator('#state-credits tr', { hasText: 'alice' }).waitFor();
  await page.locator('#state-globals tr', { hasText: 'follows' }).waitFor();
  await page.locator('#state-users tr', { hasText: 'carol' }).waitFor();
  ok('shown');
  await screenshot(tab, 'state');
  await page.getByRole('searchbox', { name: 'Search' }).fill('bob');
  await page.locator('#state-counts').getByText('match').waitFor();
  assert.deepEqual(await page.locator('#state-credits tr td:nth-child(2)').allTextContents(), ['bob']);
  assert.equal(await page.locator('#state-users tr').count(), 0);
  ok('search');
  tab.checkClean();
  ok('clean');
}

// Beyond loopback the page asks for the admin token: a wrong one is refused with its reason, the
// right one is kept, and the API and the feed work with it.
async function token(browser, wrong = rest[0]) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const tab = await context.newPage();
  tab.setDefaultTimeout(TIMEOUT_MS);
  await tab.goto(`${base}#/rules`);
  const dialog = tab.getByRole('dialog', { name: 'Admin token' });
  await dialog.waitFor();
  await tab.keyboard.press('Escape');
  assert.equal(await dialog.isVisible(), true, 'Esc leaves the dialog open');
  ok('asked');
  await dialog.getByLabel('Token').fill(wrong);
  await dialog.getByRole('button', { name: 'Use this token' }).click();
  await dialog.getByRole('alert').getByText('the admin token is wrong').waitFor();
  ok('wrong refused');
  await screenshot(tab, 'token');
  await dialog.getByLabel('Token').fill(process.env.SWITCHBOARD_TOKEN);
  await dialog.getByRole('button', { name: 'Use this token' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await tab.locator('#page-rules').getByText('Celebrate').first().waitFor();
  ok('api with token');
  await tab.getByText('Connected', { exact: true }).waitFor({ timeout: 30_000 });
  const answer = await post('/events', { source: 'mygame', type: 'boss_defeated', data: {} });
  await tab.goto(`${base}#/live`);
  await tab.locator(`#live-rows tr[data-id="${answer.body.eventId}"]`).waitFor();
  ok('feed with token');
  assert.equal(await tab.evaluate(() => localStorage.length), 1);
  await tab.reload();
  await tab.getByText('Connected', { exact: true }).waitFor();
  assert.equal(await dialog.isVisible(), false);
  ok('kept');
}

// A page of another site, in the streamer's browser, tries what needs no preflight (a text/plain
// POST, a body-less POST, a form-like POST) and what does (JSON), and the feed. The page is on
// this computer too (another port), so that Chromium's own Private Network Access rules, which
// stop a public page from reaching 127.0.0.1, leave the refusing to Switchboard.
async function crossOrigin(browser) {
  const site = http.createServer((request, response) => response.end('<p>hello</p>'));
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  const context = await browser.newContext();
  const tab = await context.newPage();
  tab.setDefaultTimeout(TIMEOUT_MS);
  await tab.goto(`http://localhost:${site.address().port}/`);
  const outcomes = await tab.evaluate(async (base) => {
    const forged = JSON.stringify({ source: 'evil', type: 'forged', data: {} });
    const attempt = (init) => fetch(`${base}events`, { method: 'POST', ...init })
      .then((response) => (response.type === 'opaque' ? 'opaque' : response.status), (error) => error.name);
    const feed = await new Promise((resolve) => {
      const socket = new WebSocket(`${base.replace('http', 'ws')}dashboard/feed`);
      socket.onopen = () => resolve('open');
      socket.onerror = () => resolve('refused');
    });
    return {
      plain: await attempt({ mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: forged }),
      form: await attempt({ mode: 'no-cors', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: forged }),
      empty: await fetch(`${base}connections/x/reconnect`, { method: 'POST', mode: 'no-cors' }).then(() => 'sent', (error) => error.name),
      json: await attempt({ headers: { 'content-type': 'application/json' }, body: forged }),
      feed,
    };
  }, base);
  // no-cors answers are opaque: the server's refusal is what the Rust side checks in its log.
  site.close();
  assert.deepEqual(outcomes, { plain: 'opaque', form: 'opaque', empty: 'sent', json: 'TypeError', feed: 'refused' });
  ok('cross-origin refused');
}

const scenarios = { feed, try: tryIt, rate, rules, connections, state, token, 'cross-origin': crossOrigin };
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  await scenarios[scenario](browser);
} finally {
  await browser.close();
}
