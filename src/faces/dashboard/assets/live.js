// Live events: the feed of every published event, newest first.
//
// Events arrive over the WebSocket /dashboard/feed. They are never put in the page one by one:
// they wait in `incoming` and are drawn once per animation frame, and the table keeps at most
// MAX_ROWS rows, so a burst of thousands of events a second costs a few rows per frame. While
// paused, events are held (at most MAX_HELD; beyond that the oldest are dropped from view and
// counted) and drawn on resume.

import { brief, el, userName } from './api.js';

/** Rows in the table at most. */
const MAX_ROWS = 500;
/** Events kept for re-filtering (the newest). */
const MAX_KEPT = 2000;
/** Events held while paused, at most. */
const MAX_HELD = 10000;
/** How often the screen-reader summary may speak, in ms. */
const ANNOUNCE_EVERY = 5000;

const state = {
  socket: null,
  paused: false,
  /** Newest last: events received and not drawn yet. */
  incoming: [],
  /** Newest last: events held while paused. */
  held: [],
  /** Newest last: the events the table may show (for re-filtering). */
  kept: [],
  received: 0,
  dropped: 0,
  frame: 0,
  retry: 500,
  filter: { source: '', type: '' },
  announced: 0,
  sinceAnnounce: 0,
  lastAnnounced: null,
};

const $ = (id) => document.getElementById(id);

function matches(event) {
  const { source, type } = state.filter;
  return (!source || String(event.source).toLowerCase().includes(source))
    && (!type || String(event.type).toLowerCase().includes(type));
}

function time(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(date.getMilliseconds()).padStart(3, '0');
}

function row(event) {
  const data = brief(event.data);
  return el('tr', { 'data-id': event.id },
    el('td', { class: 'mono' }, time(event.timestamp)),
    el('td', {}, event.source),
    el('td', {}, event.type),
    el('td', {}, userName(event.user)),
    el('td', {}, event.room || ''),
    el('td', { class: 'mono data', title: data }, data));
}

function counts() {
  $('live-received').value = state.received;
  $('live-held').value = state.held.length;
  $('live-dropped').value = state.dropped;
  $('live-shown').value = $('live-rows').rows.length;
}

/** Draws what arrived since the last frame, newest on top. */
function draw() {
  state.frame = 0;
  const fresh = state.incoming;
  state.incoming = [];
  const body = $('live-rows');
  const fragment = document.createDocumentFragment();
  let drawn = 0;
  // Newest first; only the newest MAX_ROWS can be visible at all.
  for (let i = fresh.length - 1; i >= 0 && drawn < MAX_ROWS; i--) {
    if (!matches(fresh[i])) continue;
    fragment.append(row(fresh[i]));
    drawn++;
  }
  if (drawn) body.prepend(fragment);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  counts();
  announce(fresh);
}

function schedule() {
  if (!state.frame) state.frame = requestAnimationFrame(draw);
}

function keep(events) {
  state.kept.push(...events);
  if (state.kept.length > MAX_KEPT) state.kept.splice(0, state.kept.length - MAX_KEPT);
}

function receive(message) {
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  state.received++;
  if (state.paused) {
    state.held.push(event);
    if (state.held.length > MAX_HELD) {
      state.held.shift();
      state.dropped++;
    }
  } else {
    keep([event]);
    state.incoming.push(event);
  }
  schedule();
}

/** Tells screen readers what arrived, at most every ANNOUNCE_EVERY ms (not every event). */
function announce(fresh) {
  state.sinceAnnounce += fresh.length;
  if (fresh.length) state.lastAnnounced = fresh[fresh.length - 1];
  const now = performance.now();
  if (!state.sinceAnnounce || now - state.announced < ANNOUNCE_EVERY) return;
  const latest = state.lastAnnounced;
  const who = userName(latest.user);
  $('live-announce').textContent = `${state.sinceAnnounce} new event${state.sinceAnnounce === 1 ? '' : 's'}; latest: ${latest.source} ${latest.type}${who ? ` from ${who}` : ''}`;
  state.announced = now;
  state.sinceAnnounce = 0;
}

function status(text, kind) {
  const badge = $('live-status');
  badge.textContent = text;
  badge.dataset.state = kind;
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/dashboard/feed`);
  state.socket = socket;
  socket.addEventListener('open', () => {
    state.retry = 500;
    status('Connected', 'up');
  });
  socket.addEventListener('message', receive);
  socket.addEventListener('close', (close) => {
    const why = close.reason ? ` (${close.reason})` : '';
    status(`Disconnected${why}; retrying…`, 'down');
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  });
}

function togglePause() {
  const button = $('live-pause');
  state.paused = !state.paused;
  button.setAttribute('aria-pressed', String(state.paused));
  button.textContent = state.paused ? 'Resume' : 'Pause';
  if (!state.paused) {
    const held = state.held;
    state.held = [];
    keep(held);
    state.incoming.push(...held);
    schedule();
  } else {
    counts();
  }
}

function refilter() {
  state.filter = {
    source: $('live-source').value.trim().toLowerCase(),
    type: $('live-type').value.trim().toLowerCase(),
  };
  $('live-rows').replaceChildren();
  state.incoming = state.kept.slice();
  schedule();
}

export function start() {
  $('live-pause').addEventListener('click', togglePause);
  $('live-clear').addEventListener('click', () => {
    state.kept = [];
    state.incoming = [];
    state.dropped = 0;
    $('live-rows').replaceChildren();
    counts();
  });
  $('live-source').addEventListener('input', refilter);
  $('live-type').addEventListener('input', refilter);
  $('live-filters').addEventListener('submit', (submit) => submit.preventDefault());
  connect();
}
