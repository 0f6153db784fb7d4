// Live events: the feed of every published event, newest first.
//
// Events arrive over the WebSocket /dashboard/feed. They are never put in the page one by one:
// they wait in `incoming` and are drawn once per animation frame, and the table keeps at most
// MAX_ROWS rows, so a burst of thousands of events a second costs a few rows per frame. While
// paused, events are held (at most MAX_HELD; beyond that the oldest are dropped from view and
// counted) and drawn on resume.

import { adminToken, brief, el, userName } from './api.js';

/** Rows in the table at most. */
const MAX_ROWS = 500;
/** Events kept for re-filtering (the newest). */
const MAX_KEPT = 2000;
/** Events held while paused, at most. */
const MAX_HELD = 10000;
/** The table is redrawn at most this often, in ms (each redraw lays out the whole table). */
const DRAW_EVERY = 100;
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
  drawn: 0,
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

const pad = (number, width = 2) => String(number).padStart(width, '0');

/** HH:MM:SS.mmm in local time (toLocaleTimeString is far too slow for a thousand rows a second). */
function time(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return '';
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** Fills `tr` (a new row, or one recycled from the bottom of the table) with `event`. */
function fill(tr, event) {
  const data = brief(event.data);
  const texts = [time(event.timestamp), event.source, event.type, userName(event.user), event.room || '', data];
  tr.dataset.id = event.id;
  for (let i = 0; i < 6; i++) tr.cells[i].textContent = texts[i];
  tr.cells[5].title = data;
  return tr;
}

function emptyRow() {
  return el('tr', {}, el('td', { class: 'mono' }), el('td'), el('td'), el('td'), el('td'), el('td', { class: 'mono data' }));
}

function counts() {
  $('live-received').value = state.received;
  $('live-held').value = state.held.length;
  $('live-dropped').value = state.dropped;
  $('live-shown').value = $('live-rows').rows.length;
}

/** Draws what arrived since the last frame, newest on top, reusing the rows that fall off. */
function draw(now) {
  state.frame = 0;
  state.drawn = now;
  const fresh = state.incoming;
  state.incoming = [];
  const body = $('live-rows');
  const wanted = [];
  // Newest first; only the newest MAX_ROWS can be visible at all.
  for (let i = fresh.length - 1; i >= 0 && wanted.length < MAX_ROWS; i--) {
    if (matches(fresh[i])) wanted.push(fresh[i]);
  }
  if (wanted.length) {
    const spare = [];
    let count = body.rows.length;
    while (count + wanted.length > MAX_ROWS && count > 0) {
      spare.push(body.lastElementChild);
      body.lastElementChild.remove();
      count--;
    }
    const fragment = document.createDocumentFragment();
    for (const event of wanted) fragment.append(fill(spare.pop() || emptyRow(), event));
    body.prepend(fragment);
  }
  counts();
  announce(fresh);
}

/** Asks for a draw in the next animation frame at least DRAW_EVERY ms after the last one. */
function schedule() {
  if (state.frame) return;
  const wait = state.drawn + DRAW_EVERY - performance.now();
  if (wait <= 0) {
    state.frame = requestAnimationFrame(draw);
  } else {
    state.frame = -1;
    setTimeout(() => { state.frame = requestAnimationFrame(draw); }, wait);
  }
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
  // A browser cannot set headers on a WebSocket: the token goes in the query.
  const token = adminToken();
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  const socket = new WebSocket(`${scheme}://${location.host}/dashboard/feed${query}`);
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
