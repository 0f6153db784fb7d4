// The HTTP API of the server that served the page: every request stays on this origin.

// The admin token, when the server asks for one (it does beyond loopback, and for changes made
// without the dashboard's own page): asked for once and kept in this browser's localStorage.
const TOKEN_KEY = 'switchboard.adminToken';

/** The kept admin token, or '' when none was asked for. */
export function adminToken() {
  return localStorage.getItem(TOKEN_KEY) || '';
}

let asking = null;

/** Shows the token dialog (once for every request waiting on it); resolves when a token is kept. */
function askForToken(why) {
  const error = document.getElementById('token-error');
  error.hidden = !adminToken();
  error.textContent = why;
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = document.getElementById('token-dialog');
      const form = document.getElementById('token-form');
      const input = document.getElementById('token-input');
      // The page cannot work without the token: Esc does not close the dialog.
      const stay = (cancelled) => cancelled.preventDefault();
      dialog.addEventListener('cancel', stay);
      form.addEventListener('submit', (submitted) => {
        submitted.preventDefault();
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        input.value = '';
        dialog.removeEventListener('cancel', stay);
        dialog.close();
        asking = null;
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }
  return asking;
}

/** Sends `method path` with an optional JSON body; answers {status, body} (body: JSON or null). */
export async function request(method, path, body) {
  for (;;) {
    const answer = await send(method, path, body);
    if (answer.status !== 401) return answer;
    await askForToken(errorText(answer));
  }
}

async function send(method, path, body) {
  const init = { method, headers: {} };
  if (method === 'POST' || method === 'PUT') init.headers['Content-Type'] = 'application/json';
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const token = adminToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
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
