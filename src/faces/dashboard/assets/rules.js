// Rules and actions: the list, one document's JSON editor (saved through PUT, with validation
// errors beside their lines), enable/disable, a dry run, and its recent traces as a timeline.

import { brief, el, errorText, request } from './api.js';
import { lineOf, pointerLines, splitError } from './pointer.js';

const $ = (id) => document.getElementById(id);

/** The open document: {kind, id, stored} (stored: the document as last saved). */
let open = null;

const route = (kind) => (kind === 'action' ? '/actions' : '/rules');

function triggers(document) {
  if (document.kind === 'action') return 'called';
  return (document.triggers || []).map((trigger) => {
    if (trigger.on === 'call') return 'call';
    if (trigger.command) return `command ${(trigger.command.names || []).join(' ')}`;
    const sources = trigger.sources ? `${trigger.sources.join(', ')} ` : '';
    return `${sources}${trigger.on}`;
  }).join('; ');
}

function when(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString(undefined, { hour12: false });
}

async function lastRun(kind, id) {
  const answer = await request('GET', `${route(kind)}/${encodeURIComponent(id)}/traces`);
  const trace = answer.status === 200 ? answer.body.traces[0] : null;
  return trace ? `${trace.outcome} at ${when(trace.startedAt)}` : 'never';
}

export async function show() {
  const [rules, actions] = await Promise.all([request('GET', '/rules'), request('GET', '/actions')]);
  const documents = [...(rules.body?.documents || []), ...(actions.body?.documents || [])];
  const runs = await Promise.all(documents.map((document) => lastRun(document.kind, document.id)));
  const rows = documents.map((document, index) => el('tr', {},
    el('th', { scope: 'row' }, el('button', { type: 'button', class: 'link', onclick: () => openDocument(document.kind, document.id) }, document.name)),
    el('td', {}, document.kind),
    el('td', {}, document.enabled === false ? 'no' : 'yes'),
    el('td', {}, document.group || ''),
    el('td', {}, triggers(document)),
    el('td', {}, runs[index])));
  $('rules-rows').replaceChildren(...rows);
  $('rules-count').textContent = `${documents.length} document${documents.length === 1 ? '' : 's'}`;
}

function numberLines(text, errors = new Map()) {
  const count = text.split('\n').length;
  const gutter = [];
  const notes = [];
  for (let line = 1; line <= count; line++) {
    const error = errors.get(line);
    gutter.push(el('span', { class: error ? 'ln err' : 'ln' }, `${error ? '⚠ ' : ''}${line}\n`));
    notes.push(el('span', { class: error ? 'note err' : 'note' }, `${error ? error.join('; ') : ''}\n`));
  }
  $('rules-gutter').replaceChildren(...gutter);
  $('rules-notes').replaceChildren(...notes);
}

/** Scrolls the editor so that `line` is near its top. */
function reveal(line) {
  const editor = $('rules-text');
  const height = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (line - 3) * height);
  editor.dispatchEvent(new Event('scroll'));
}

/** Selects `line` in the editor and gives it the focus. */
function goToLine(line) {
  const editor = $('rules-text');
  const lines = editor.value.split('\n');
  const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[line - 1] || '').length);
  reveal(line);
}

function showErrors(messages) {
  const text = $('rules-text').value;
  let lines = new Map();
  try {
    lines = pointerLines(text);
  } catch {
    // Not JSON: every error goes on line 1.
  }
  const byLine = new Map();
  const items = messages.map((message) => {
    const { pointer, reason } = splitError(message);
    const line = lineOf(lines, pointer);
    byLine.set(line, [...(byLine.get(line) || []), reason]);
    return el('li', {}, el('button', { type: 'button', class: 'link', onclick: () => goToLine(line) }, `Line ${line}`), ` ${pointer || '/'}: ${reason}`);
  });
  numberLines(text, byLine);
  $('rules-errors').replaceChildren(...items);
  if (byLine.size) reveal(Math.min(...byLine.keys()));
}

function status(text, ok) {
  $('rules-saved').textContent = text;
  $('rules-saved').dataset.ok = String(ok);
}

async function put(document) {
  const answer = await request('PUT', `${route(open.kind)}/${encodeURIComponent(open.id)}`, document);
  if (answer.status === 200) {
    open.stored = document;
    showErrors([]);
    return true;
  }
  const errors = answer.body?.errors || [errorText(answer)];
  showErrors(errors);
  return false;
}

async function save() {
  let document;
  try {
    document = JSON.parse($('rules-text').value);
  } catch (error) {
    showErrors([`: : not JSON: ${error.message}`]);
    status('Not saved: the text is not JSON', false);
    return;
  }
  if (await put(document)) {
    status('Saved', true);
    showToggle();
    show();
  } else {
    status('Not saved: see the errors', false);
  }
}

function showToggle() {
  const enabled = open.stored.enabled !== false;
  const button = $('rules-toggle');
  button.textContent = enabled ? 'Disable' : 'Enable';
  $('rules-state').textContent = enabled ? 'Enabled' : 'Disabled';
  $('rules-state').dataset.state = enabled ? 'up' : 'down';
}

async function toggle() {
  const document = { ...open.stored, enabled: open.stored.enabled === false };
  if (await put(document)) {
    $('rules-text').value = JSON.stringify(document, null, 2);
    numberLines($('rules-text').value);
    status(document.enabled ? 'Enabled and saved' : 'Disabled and saved', true);
    showToggle();
    show();
  } else {
    status('Not changed: see the errors', false);
  }
}

function condition(node) {
  if (!node || typeof node !== 'object') return el('li', {}, brief(node));
  const mark = node.skipped ? 'skipped' : node.result ? 'passed' : 'failed';
  const verdict = node.skipped ? '(not needed)' : node.result ? '✓ true' : '✗ false';
  for (const key of ['all', 'any']) {
    if (Array.isArray(node[key])) {
      return el('li', { class: mark }, `${key} of: ${verdict}`, el('ul', {}, node[key].map(condition)));
    }
  }
  if (node.not) return el('li', { class: mark }, `not: ${verdict}`, el('ul', {}, condition(node.not)));
  const saw = node.skipped ? '' : 'actual' in node ? ` — saw ${brief(node.actual)}` : ' — saw nothing (missing)';
  const value = 'value' in node && node.value !== null ? ` ${brief(node.value)}` : '';
  const error = node.error ? ` — error: ${node.error}` : '';
  return el('li', { class: mark }, el('code', {}, `${node.fact} ${node.op}${value}`), `${saw}${error} → ${verdict}`);
}

function timeline(trace) {
  const steps = [];
  const event = trace.event || {};
  steps.push(el('li', { class: 'passed' }, trace.trigger ? `Trigger “${trace.trigger}” matched ` : 'Started by ', el('code', {}, `${event.source}/${event.type}`), event.userId ? ` from user ${event.userId}` : ''));
  if (trace.conditions) steps.push(el('li', { class: trace.conditions.result ? 'passed' : 'failed' }, 'Conditions', el('ul', { class: 'tree' }, condition(trace.conditions))));
  for (const limit of trace.limits || []) {
    steps.push(el('li', { class: limit.passed ? 'passed' : 'failed' }, `Limit ${limit.limit} (${limit.scope}${limit.key ? ` ${limit.key}` : ''}): ${limit.passed ? 'passed' : `refused, ${Math.ceil(limit.remainingMs / 1000)} s left`}`));
  }
  for (const step of trace.steps || []) {
    const failed = step.outcome === 'error' || step.outcome === 'cancelled';
    steps.push(el('li', { class: failed ? 'failed' : step.outcome === 'skipped' ? 'skipped' : 'passed' },
      el('code', {}, step.id), ` (${step.kind}) ${step.outcome}, ${step.durationMs} ms${step.branch ? `, branch ${step.branch}` : ''}${step.error ? ` — ${brief(step.error)}` : ''}`));
  }
  const ok = trace.outcome === 'completed';
  steps.push(el('li', { class: ok ? 'passed' : 'failed' }, `Outcome: ${trace.outcome}${trace.error ? ` — ${trace.error.code}: ${trace.error.message}` : ''}`));
  return el('li', { class: 'trace' },
    el('p', {}, el('strong', {}, trace.outcome), ` at ${when(trace.startedAt)}, ${trace.durationMs} ms`),
    el('ol', { class: 'timeline' }, steps));
}

async function traces() {
  const answer = await request('GET', `${route(open.kind)}/${encodeURIComponent(open.id)}/traces`);
  const list = answer.status === 200 ? answer.body.traces : [];
  $('rules-traces-count').textContent = `${list.length} trace${list.length === 1 ? '' : 's'}`;
  $('rules-traces').replaceChildren(...list.map(timeline));
}

async function dryRun() {
  const result = $('rules-dry-result');
  let test;
  try {
    test = JSON.parse($('rules-event').value);
  } catch (error) {
    result.replaceChildren(el('p', { class: 'result', 'data-ok': 'false' }, `The test is not JSON: ${error.message}`));
    return;
  }
  const answer = await request('POST', `${route(open.kind)}/${encodeURIComponent(open.id)}/test`, test);
  if (answer.status !== 200) {
    result.replaceChildren(el('p', { class: 'result', 'data-ok': 'false' }, `Refused: ${errorText(answer)}`));
    return;
  }
  const report = answer.body;
  const expected = $('rules-tests').selectedOptions[0]?.dataset.expect;
  const verdict = expected ? (expected === report.outcome ? ` (expected ${expected}: as expected)` : ` (expected ${expected}: differs)`) : '';
  result.replaceChildren(
    el('p', { class: 'result', 'data-ok': String(report.outcome === 'completed') }, `Dry run: ${report.outcome}${verdict}; ${report.emitted.length} emitted, ${report.sent.length} sent`),
    report.trace ? el('ol', { class: 'traces' }, timeline(report.trace)) : '');
}

/** Runs the document's own tests as `switchboard rules test` does (POST /rules/{id}/tests). */
async function ownTests() {
  const result = $('rules-tests-result');
  const answer = await request('POST', `${route(open.kind)}/${encodeURIComponent(open.id)}/tests`);
  if (answer.status !== 200) {
    result.replaceChildren(el('p', { class: 'result', 'data-ok': 'false' }, `Refused: ${errorText(answer)}`));
    return;
  }
  const { tests, passed, failed } = answer.body;
  const items = tests.map((test) => el('li', { class: test.passed ? 'passed' : 'failed' },
    `${test.passed ? '✓' : '✗'} ${test.name}`,
    test.passed ? '' : `: ${test.pointer || '/'}: expected ${brief(test.expected)}, got ${brief(test.got)}`));
  result.replaceChildren(
    el('p', { class: 'result', 'data-ok': String(failed === 0) }, tests.length ? `${passed} passed, ${failed} failed` : 'This document has no tests'),
    el('ul', { class: 'tree' }, items));
}

function presets(document) {
  const options = [el('option', { value: '' }, 'A chosen event (edit below)')];
  for (const [index, test] of (document.tests || []).entries()) {
    options.push(el('option', { value: String(index), 'data-expect': test.expect?.outcome || '' }, test.name || `test ${index + 1}`));
  }
  $('rules-tests').replaceChildren(...options);
  const trigger = (document.triggers || []).find((item) => item.on && item.on !== 'call');
  const event = document.kind === 'action' || !trigger
    ? { call: { args: {} } }
    : { event: { source: trigger.sources?.[0] || 'test', type: trigger.on, data: {} } };
  $('rules-event').value = JSON.stringify(event, null, 2);
}

function preset() {
  const index = $('rules-tests').value;
  if (index === '') return presets(open.stored);
  const { name, expect, ...test } = open.stored.tests[Number(index)];
  $('rules-event').value = JSON.stringify(test, null, 2);
}

async function openDocument(kind, id) {
  const answer = await request('GET', `${route(kind)}/${encodeURIComponent(id)}`);
  if (answer.status !== 200) return;
  open = { kind, id, stored: answer.body };
  $('rules-detail').hidden = false;
  $('rules-name').textContent = `${answer.body.name} (${kind})`;
  $('rules-text').value = JSON.stringify(answer.body, null, 2);
  $('rules-errors').replaceChildren();
  $('rules-dry-result').replaceChildren();
  $('rules-tests-result').replaceChildren();
  status('', true);
  numberLines($('rules-text').value);
  showToggle();
  presets(answer.body);
  await traces();
  $('rules-name').focus();
}

export function start() {
  $('rules-refresh').addEventListener('click', show);
  $('rules-save').addEventListener('click', save);
  $('rules-toggle').addEventListener('click', toggle);
  $('rules-dry').addEventListener('click', dryRun);
  $('rules-own-tests').addEventListener('click', ownTests);
  $('rules-tests').addEventListener('change', preset);
  $('rules-traces-refresh').addEventListener('click', traces);
  const editor = $('rules-text');
  editor.addEventListener('input', () => numberLines(editor.value));
  editor.addEventListener('scroll', () => {
    $('rules-gutter').scrollTop = editor.scrollTop;
    $('rules-notes').scrollTop = editor.scrollTop;
  });
}
