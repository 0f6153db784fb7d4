// Talks HTTP/2 (Node's http2, which negotiates h2 by ALPN) to Switchboard's HTTP face over TLS:
// without a Host header, the server must still recognise requests from its own page.
// Usage: node h2.mjs <https-url> <ca-file>. Prints one line per request.
import fs from 'node:fs';
import http2 from 'node:http2';

const [base, caFile] = process.argv.slice(2);
const origin = new URL(base).origin;
const client = http2.connect(origin, { ca: fs.readFileSync(caFile) });
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('error', reject);
});
console.log(`protocol ${client.alpnProtocol}`);

function send(headers, body) {
  return new Promise((resolve, reject) => {
    const request = client.request(headers);
    let status = 0;
    request.on('response', (response) => { status = response[':status']; });
    request.on('data', () => {});
    request.on('end', () => resolve(status));
    request.on('error', reject);
    request.end(body);
  });
}

console.log(`GET /rules ${await send({ ':path': '/rules' })}`);
const event = JSON.stringify({ source: 'test', type: 'h2' });
const post = (from) => send({ ':method': 'POST', ':path': '/events', 'content-type': 'application/json', origin: from }, event);
console.log(`same-origin POST /events ${await post(origin)}`);
console.log(`foreign POST /events ${await post('https://evil.example')}`);
client.close();
