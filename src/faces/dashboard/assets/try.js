// Try it: publish an event (POST /events) or run an action by name (POST /DoAction).

import { errorText, el, request } from './api.js';

function parseJson(text, what) {
  if (!text.trim()) return { value: undefined };
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `${what} is not JSON: ${error.message}` };
  }
}

function report(result, text, ok) {
  result.textContent = text;
  result.dataset.ok = String(ok);
}

async function injectEvent(submit) {
  submit.preventDefault();
  const form = submit.target;
  const result = document.getElementById('try-event-result');
  const fields = Object.fromEntries(new FormData(form));
  const data = parseJson(fields.data, 'Data');
  if (data.error) return report(result, data.error, false);
  const event = { source: fields.source, type: fields.type, data: data.value };
  if (fields.username.trim()) event.user = { username: fields.username.trim() };
  if (fields.room.trim()) event.room = fields.room.trim();
  const answer = await request('POST', '/events', event);
  if (answer.status === 200) report(result, `Published: event ${answer.body.eventId}`, true);
  else report(result, `Refused: ${errorText(answer)}`, false);
}

async function runAction(submit) {
  submit.preventDefault();
  const form = submit.target;
  const result = document.getElementById('try-action-result');
  const fields = Object.fromEntries(new FormData(form));
  const args = parseJson(fields.args, 'Arguments');
  if (args.error) return report(result, args.error, false);
  const answer = await request('POST', '/DoAction', { action: { name: fields.name }, args: args.value ?? {} });
  if (answer.status === 204) report(result, `Started “${fields.name}” (see its traces for how it ran)`, true);
  else report(result, `Refused: ${errorText(answer)}`, false);
}

/** Fills the action names the form suggests. */
export async function show() {
  const answer = await request('GET', '/GetActions');
  if (answer.status !== 200) return;
  const names = answer.body.actions.map((action) => el('option', { value: action.name }));
  document.getElementById('try-action-names').replaceChildren(...names);
}

export function start() {
  document.getElementById('try-event').addEventListener('submit', injectEvent);
  document.getElementById('try-action').addEventListener('submit', runAction);
}
