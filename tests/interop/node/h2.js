#!/usr/bin/env node
// WebSockets over HTTP/2 (RFC 8441) with Node's built-in `http2` module, the frames written
// and read by the `ws` library's own Sender and Receiver (through `WebSocket#setSocket`).
//
// Usage:
//   node h2.js server [--deflate]
//       An h2c server (prior knowledge) with SETTINGS_ENABLE_CONNECT_PROTOCOL that echoes
//       every message. stdout: `LISTENING <port>`, then per WebSocket `STREAM <path>
//       <extensions or ->` when it opens and `CLOSE <code>` when it ends.
//   node h2.js client <http://host:port/path> [--deflate] [--count N]
//       One HTTP/2 session, N (default 3) WebSockets on it, each sending a text and a 70 000
//       byte binary message and checking the echoes, then closing with 1000. Prints
//       `OK <N> deflate=<true|false>` and exits 0 when every echo and close came back.
// Exits after 60 s at most (a safety net against leaked children).
'use strict';

const http2 = require('http2');
const WebSocket = require('ws');
// `ws` exports only its public API: its internals by file path.
const wsLib = require('path').join(require('path').dirname(require.resolve('ws')), 'lib');
const PerMessageDeflate = require(`${wsLib}/permessage-deflate.js`);
const { parse, format } = require(`${wsLib}/extension.js`);

setTimeout(() => {
  process.stderr.write('h2.js: 60 s limit\n');
  process.exit(3);
}, 60000).unref();

const argv = process.argv.slice(2);
const deflate = argv.includes('--deflate');
const countAt = argv.indexOf('--count');
const count = countAt >= 0 ? Number(argv[countAt + 1]) : 3;

/// A `ws` WebSocket over an HTTP/2 stream, as server or client, with the negotiated deflate.
function websocketOn(stream, isServer, perMessageDeflate) {
  // Options a server-side `ws` instance reads in its constructor (the close timer's included:
  // left out, it fires at once).
  const ws = new WebSocket(null, undefined, { closeTimeout: 30000 });
  ws._isServer = isServer;
  if (perMessageDeflate) ws._extensions[PerMessageDeflate.extensionName] = perMessageDeflate;
  ws.setSocket(stream, Buffer.alloc(0), { maxPayload: 100 * 1024 * 1024 });
  return ws;
}

function server() {
  const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
  h2.on('stream', (stream, headers) => {
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
      stream.respond({ ':status': 400 });
      stream.end();
      return;
    }
    let perMessageDeflate = null;
    const response = { ':status': 200 };
    const offer = headers['sec-websocket-extensions'];
    if (deflate && offer) {
      const offers = parse(offer);
      if (offers[PerMessageDeflate.extensionName]) {
        perMessageDeflate = new PerMessageDeflate({ isServer: true, threshold: 0 });
        perMessageDeflate.accept(offers[PerMessageDeflate.extensionName]);
        response['sec-websocket-extensions'] = format({
          [PerMessageDeflate.extensionName]: [perMessageDeflate.params]
        });
      }
    }
    stream.respond(response);
    console.log(`STREAM ${headers[':path']} ${response['sec-websocket-extensions'] || '-'}`);
    const ws = websocketOn(stream, true, perMessageDeflate);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code) => console.log(`CLOSE ${code}`));
    ws.on('error', (e) => process.stderr.write(`h2.js server: ${e.message}\n`));
  });
  h2.listen(0, '127.0.0.1', () => console.log(`LISTENING ${h2.address().port}`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

function client(url) {
  const target = new URL(url);
  const session = http2.connect(`http://${target.host}`);
  session.on('error', (e) => fail(`session: ${e.message}`));
  session.once('remoteSettings', (settings) => {
    if (!settings.enableConnectProtocol) fail('server does not allow extended CONNECT');
    const done = [];
    for (let i = 0; i < count; i++) done.push(openOne(session, target, i));
    Promise.all(done).then(
      () => {
        console.log(`OK ${count} deflate=${deflate}`);
        session.close(() => process.exit(0));
      },
      (e) => fail(e.message)
    );
  });
}

function openOne(session, target, i) {
  return new Promise((resolve, reject) => {
    let perMessageDeflate = null;
    const headers = {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'http',
      ':path': target.pathname + target.search,
      ':authority': target.host,
      'sec-websocket-version': '13'
    };
    if (deflate) {
      perMessageDeflate = new PerMessageDeflate({ isServer: false, threshold: 0 });
      headers['sec-websocket-extensions'] = format({
        [PerMessageDeflate.extensionName]: perMessageDeflate.offer()
      });
    }
    const stream = session.request(headers, { endStream: false });
    stream.on('response', (response) => {
      if (response[':status'] !== 200) return reject(new Error(`status ${response[':status']}`));
      const answer = response['sec-websocket-extensions'];
      if (deflate) {
        if (!answer) return reject(new Error('deflate not negotiated'));
        perMessageDeflate.accept(parse(answer)[PerMessageDeflate.extensionName]);
      } else {
        perMessageDeflate = null;
      }
      const ws = websocketOn(stream, false, perMessageDeflate);
      const text = `hello ${i} over h2`;
      const binary = Buffer.alloc(70000, i + 1);
      const expected = [text, binary];
      ws.on('message', (data, isBinary) => {
        const want = expected.shift();
        const ok = isBinary ? Buffer.isBuffer(want) && want.equals(data) : data.toString() === want;
        if (!ok) return reject(new Error(`stream ${i}: wrong echo`));
        if (expected.length === 0) ws.close(1000, 'done');
      });
      ws.on('close', (code) => (code === 1000 ? resolve() : reject(new Error(`stream ${i}: close ${code}`))));
      ws.on('error', (e) => reject(e));
      ws.send(text);
      ws.send(binary);
    });
  });
}

function fail(message) {
  process.stderr.write(`h2.js client: ${message}\n`);
  process.exit(1);
}

if (argv[0] === 'server') server();
else if (argv[0] === 'client' && argv[1]) client(argv[1]);
else fail('usage: node h2.js server [--deflate] | client URL [--deflate] [--count N]');
