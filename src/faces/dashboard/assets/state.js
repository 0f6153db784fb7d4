// State: the credits (GET /credits) and the global and user variables (GET /variables), read-only,
// with one search box over all of them.

import { brief, el, request } from './api.js';

const $ = (id) => document.getElementById(id);

/** What was last read: {credits: [[list, name]], globals, users}. */
let state = { credits: [], globals: [], users: [] };

function flatten(credits) {
  const rows = [];
  for (const [group, lists] of Object.entries(credits || {})) {
    if (!lists || typeof lists !== 'object') continue;
    for (const [list, names] of Object.entries(lists)) {
      if (Array.isArray(names)) for (const name of names) rows.push([`${group}.${list}`, typeof name === 'string' ? name : brief(name)]);
    }
  }
  return rows;
}

function draw() {
  const query = $('state-search').value.trim().toLowerCase();
  const hit = (...texts) => !query || texts.some((text) => String(text ?? '').toLowerCase().includes(query));
  const credits = state.credits.filter(([list, name]) => hit(list, name));
  const globals = state.globals.filter((v) => hit(v.name, brief(v.value)));
  const users = state.users.filter((v) => hit(v.name, v.source, v.userId, v.username, v.nickname, brief(v.value)));
  $('state-credits').replaceChildren(...credits.map(([list, name]) => el('tr', {}, el('td', {}, list), el('td', {}, name))));
  $('state-globals').replaceChildren(...globals.map((v) => el('tr', {}, el('th', { scope: 'row' }, v.name), el('td', { class: 'mono' }, brief(v.value)), el('td', {}, v.updatedAt || ''))));
  $('state-users').replaceChildren(...users.map((v) => el('tr', {},
    el('th', { scope: 'row' }, v.name), el('td', {}, v.source), el('td', {}, v.nickname || v.username || v.userId),
    el('td', { class: 'mono' }, brief(v.value)), el('td', {}, v.updatedAt || ''))));
  $('state-counts').textContent = `${credits.length} credit entries, ${globals.length} globals, ${users.length} user variables${query ? ' match' : ''}`;
}

export async function show() {
  const [credits, variables] = await Promise.all([request('GET', '/credits'), request('GET', '/variables')]);
  state = {
    credits: credits.status === 200 ? flatten(credits.body) : [],
    globals: variables.status === 200 ? variables.body.globals : [],
    users: variables.status === 200 ? variables.body.users : [],
  };
  draw();
}

/** How often the page reads the state again while it is shown, in ms. */
const REFRESH_EVERY = 2000;

export function start() {
  setInterval(() => {
    if (!$('page-state').hidden && !document.hidden) show();
  }, REFRESH_EVERY);
  $('state-search').addEventListener('input', draw);
  $('state-refresh').addEventListener('click', show);
  $('state-form').addEventListener('submit', (submit) => submit.preventDefault());
}
