// The HTTP API of the server that served the page: every request stays on this origin.

/** Sends `method path` with an optional JSON body; answers {status, body} (body: JSON or null). */
export async function request(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { status: 'error', error: text };
    }
  }
  return { status: response.status, body: json };
}

/** The error message of an error answer. */
export function errorText(answer) {
  const body = answer.body;
  if (body && typeof body.error === 'string') return body.error;
  return `HTTP ${answer.status}`;
}

/** Creates an element with attributes and children (strings become text, never HTML). */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (key in element && typeof value !== 'string') element[key] = value;
    else element.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A JSON value as one short line. */
export function brief(value, limit = 160) {
  const text = value === undefined ? '' : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** The name an event's user is shown by. */
export function userName(user) {
  if (!user) return '';
  return user.nickname || user.username || user.id || '';
}
