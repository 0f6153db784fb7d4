// A plain Node `ws` broadcast server, the core of a typical Node bridge: every message a client
// sends goes to every other open client. Usage: node ws-peer.js [port]  (prints "listening <port>")
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] || 0) }, () => {
  console.log(`listening ${wss.address().port}`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const text = data.toString();
    for (const client of wss.clients) {
      if (client !== ws && client.readyState === 1) client.send(text);
    }
  });
});
