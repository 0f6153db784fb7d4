// A Socket.IO server that re-emits every `event` to every other client, as a Socket.IO bridge
// would. Usage: node socketio-peer.js [port]  (prints "listening <port>")
const http = require('node:http');
const { Server } = require('socket.io');

const server = http.createServer();
const io = new Server(server, { transports: ['websocket'] });
io.on('connection', (socket) => {
  socket.on('event', (data) => socket.broadcast.emit('event', data));
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
