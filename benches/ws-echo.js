// A plain echo server on the seed library (ws under Node): the peer for `elo bench` ratios.
// Usage: node benches/ws-echo.js ; prints `LISTENING <port>`, echoes every message.
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '../tests/interop/node/node_modules/ws'));

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => console.log(`LISTENING ${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
