// The reference library's broadcast server for the fan-out benchmark: the loop from its
// README ("Server broadcast", every other client), with clients grouped by request path so
// that it relays to every other client on the same path, as the other servers do.
//
//   node bench/fanout/ws-broadcast.js [--deflate]     prints "READY 127.0.0.1:PORT"
//
// `ws` comes from the test peers' install (tests/interop/node, by scripts/test.sh).
'use strict';
const path = require('path');
const { WebSocketServer, WebSocket } = require(
  path.join(__dirname, '../../tests/interop/node/node_modules/ws')
);

const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate });
const rooms = new Map();

wss.on('connection', function connection(ws, request) {
  const room = request.url.split('?')[0];
  if (!rooms.has(room)) rooms.set(room, new Set());
  const clients = rooms.get(room);
  clients.add(ws);
  ws.on('close', () => clients.delete(ws));
  ws.on('error', () => {});
  ws.on('message', function message(data, isBinary) {
    clients.forEach(function each(client) {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  process.stdout.write(`READY ${address}:${port}\n`);
});
