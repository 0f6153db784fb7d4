// Runs the <script> of examples/overlay.html as written, in Node, with the `ws` package as the
// browser's WebSocket and a minimal document, against a running Switchboard.
// Usage: node overlay.mjs <ws-url> <http-url>   (prints each text the overlay shows)
import { readFile } from 'node:fs/promises';
import vm from 'node:vm';
import WebSocket from 'ws';

const [wsUrl, httpUrl] = process.argv.slice(2);
const html = await readFile(new URL('../../examples/overlay.html', import.meta.url), 'utf8');
const script = html.match(/<script>([\s\S]*?)<\/script>/)[1]
  // The only change: the server's test port instead of the default 8080.
  .replace('ws://127.0.0.1:8080/', wsUrl);

const shown = [];
const wanted = ['Alice followed!', 'Thanks for the 100 bits!', 'Boss down'];
const element = {
  set textContent(text) {
    shown.push(text);
    console.log(text);
    if (shown.length === wanted.length) process.exit(shown.every((t, i) => t === wanted[i]) ? 0 : 1);
  },
};
const context = {
  window: { WebSocket },
  WebSocket: class extends WebSocket {
    constructor(url) {
      super(url);
      this.on('message', async (data) => {
        const message = JSON.parse(data);
        if (message.id === 'overlay-subscribe') await publish();
      });
    }
  },
  document: { getElementById: () => element },
  setTimeout,
  JSON,
};
context.window.WebSocket = context.WebSocket;

async function inject(event) {
  await fetch(new URL('/events', httpUrl), {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.SWITCHBOARD_TOKEN}` }, body: JSON.stringify(event),
  });
}

async function publish() {
  await inject({ source: 'twitch', type: 'follow', user: { nickname: 'Alice' }, data: {} });
  await inject({ source: 'twitch', type: 'cheer', data: { bits: 100 } });
  await inject({ source: 'general', type: 'Custom', data: { title: 'Boss down' } });
}

setTimeout(() => { console.error('timed out; shown:', shown); process.exit(1); }, 10_000);
vm.runInNewContext(script, context);
