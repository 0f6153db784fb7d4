// Connections: inbound WebSocket sessions per face (GET /sessions) and the outbound links
// (GET /connections), each with a Reconnect button (POST /connections/{name}/reconnect).

import { el, errorText, request } from './api.js';

const $ = (id) => document.getElementById(id);

function when(timestamp) {
  if (!timestamp) return '';
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString(undefined, { hour12: false });
}

async function reconnect(name) {
  const answer = await request('POST', `/connections/${encodeURIComponent(name)}/reconnect`);
  $('connections-result').textContent = answer.status === 202 ? `Redialling ${name}…` : `Refused: ${errorText(answer)}`;
  await show();
}

async function outbound() {
  const answer = await request('GET', '/connections');
  const list = answer.status === 200 ? answer.body.connections : [];
  $('connections-outbound-count').textContent = `${list.length}`;
  $('connections-outbound').replaceChildren(...list.map((link) => el('tr', { 'data-name': link.name },
    el('th', { scope: 'row' }, link.name),
    el('td', { class: 'mono' }, link.url),
    el('td', {}, el('span', { class: 'badge', 'data-state': link.status === 'connected' ? 'up' : link.status === 'error' ? 'down' : '' }, link.status)),
    el('td', {}, when(link.since)),
    el('td', {}, link.lastError ? `${link.lastError} (${when(link.lastErrorAt)})` : ''),
    el('td', {}, String(link.failures)),
    el('td', {}, when(link.nextRetryAt)),
    el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-label': `Reconnect ${link.name}`, onclick: () => reconnect(link.name) }, 'Reconnect')))));
}

async function inbound() {
  const answer = await request('GET', '/sessions');
  const body = answer.status === 200 ? answer.body : { sessions: [], byFace: {} };
  const faces = Object.entries(body.byFace).map(([face, count]) => `${face}: ${count}`).join(' · ');
  $('connections-inbound-summary').textContent = faces || 'none';
  $('connections-inbound').replaceChildren(...body.sessions.map((session) => el('tr', {},
    el('td', {}, String(session.id)),
    el('td', {}, session.face),
    el('td', { class: 'mono' }, session.peer || ''),
    el('td', {}, session.subscriptions.length ? session.subscriptions.join(', ') : 'nothing yet'))));
}

export async function show() {
  await Promise.all([outbound(), inbound()]);
}

/** How often the page reads the connections again while it is shown, in ms. */
const REFRESH_EVERY = 2000;

export function start() {
  $('connections-refresh').addEventListener('click', show);
  setInterval(() => {
    if (!$('page-connections').hidden && !document.hidden) show();
  }, REFRESH_EVERY);
}
