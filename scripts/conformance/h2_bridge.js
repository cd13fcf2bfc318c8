#!/usr/bin/env node
// Carries Autobahn's TCP WebSockets over HTTP/2 streams (RFC 8441), so that wstest judges our
// server and client over HTTP/2. Node's own `http2` module does the HTTP/2 side; the WebSocket
// frames pass through untouched, both ways.
//
//   node h2_bridge.js to-h2 LISTEN_PORT -- SERVER_CMD...
//       Starts SERVER_CMD 127.0.0.1:0 (it must print `ws://ADDR` once listening and take
//       cleartext HTTP/2 with prior knowledge), then listens on LISTEN_PORT for wstest's
//       fuzzingclient: each HTTP/1.1 upgrade becomes an extended CONNECT on one HTTP/2
//       connection to the server, answered 101 once the server answers 200.
//   node h2_bridge.js from-h2 TARGET_PORT -- CLIENT_CMD...
//       Listens for cleartext HTTP/2 on a free port and runs CLIENT_CMD with the bridge's
//       ws:// URL as its first argument: each extended CONNECT becomes an HTTP/1.1 upgrade to
//       wstest's fuzzingserver on TARGET_PORT, answered 200 once it answers 101. Exits with
//       the client's status.
//
// Sec-WebSocket-Extensions and -Protocol are carried across in both directions; the key and
// accept, which HTTP/2 doesn't use, are made up on the HTTP/1.1 side.
'use strict';

const http2 = require('http2');
const net = require('net');
const crypto = require('crypto');
const { spawn } = require('child_process');

const [mode, portArg, dashes, ...command] = process.argv.slice(2);
if (!['to-h2', 'from-h2'].includes(mode) || dashes !== '--' || command.length === 0) {
  process.stderr.write('usage: h2_bridge.js to-h2|from-h2 PORT -- CMD...\n');
  process.exit(2);
}
const port = Number(portArg);
const CARRIED = ['sec-websocket-extensions', 'sec-websocket-protocol', 'origin'];
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/// Reads an HTTP/1.1 head off `socket`: calls back with (first line, headers, rest).
function readHead(socket, done) {
  let buffered = Buffer.alloc(0);
  const onData = (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buffered.length > 65536) socket.destroy();
      return;
    }
    socket.removeListener('data', onData);
    socket.pause();
    const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    done(lines[0], headers, buffered.subarray(end + 4));
  };
  socket.on('data', onData);
}

/// Pipes bytes both ways; either side ending ends the other, a failure resets the other.
function join(socket, stream, rest) {
  if (rest.length > 0) stream.write(rest);
  socket.pipe(stream);
  stream.pipe(socket);
  socket.resume();
  socket.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
  stream.on('error', () => socket.destroy());
  stream.on('aborted', () => socket.destroy());
}

function carried(from, to) {
  for (const name of CARRIED) if (from[name] !== undefined) to[name] = from[name];
  return to;
}

function toH2() {
  const child = spawn(command[0], [...command.slice(1), '127.0.0.1:0'], { stdio: ['ignore', 'inherit', 'pipe'] });
  child.on('exit', (code) => process.exit(code === null ? 1 : code));
  let text = '';
  child.stderr.on('data', (chunk) => {
    process.stderr.write(chunk);
    if (text === null) return;
    text += chunk.toString();
    const found = /ws:\/\/([0-9.]+:[0-9]+)/.exec(text);
    if (found) {
      text = null;
      listenFor(found[1]);
    }
  });
  const listenFor = (backend) => {
    let session = null;
    const connection = () => {
      if (session === null || session.closed || session.destroyed) {
        session = http2.connect(`http://${backend}`);
        session.on('error', (e) => process.stderr.write(`bridge: ${e.message}\n`));
      }
      return session;
    };
    net
      .createServer((socket) => {
        socket.setNoDelay(true);
        readHead(socket, (line, headers, rest) => {
          const path = line.split(' ')[1] || '/';
          const stream = connection().request(
            carried(headers, {
              ':method': 'CONNECT',
              ':protocol': 'websocket',
              ':scheme': 'http',
              ':path': path,
              ':authority': backend,
              'sec-websocket-version': headers['sec-websocket-version'] || '13'
            }),
            { endStream: false }
          );
          stream.on('response', (response) => {
            const status = response[':status'];
            if (status !== 200) {
              socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
              stream.close();
              return;
            }
            const accept = crypto.createHash('sha1').update(headers['sec-websocket-key'] + GUID).digest('base64');
            let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
            head += `Sec-WebSocket-Accept: ${accept}\r\n`;
            for (const [name, value] of Object.entries(carried(response, {}))) head += `${name}: ${value}\r\n`;
            socket.write(head + '\r\n');
            join(socket, stream, rest);
          });
          stream.on('error', () => socket.destroy());
        });
      })
      .listen(port, '127.0.0.1');
  };
}

function fromH2() {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  server.on('stream', (stream, headers) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
    socket.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      let head = `GET ${headers[':path']} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
      head += `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n`;
      head += `Sec-WebSocket-Version: ${headers['sec-websocket-version'] || '13'}\r\n`;
      for (const [name, value] of Object.entries(carried(headers, {}))) head += `${name}: ${value}\r\n`;
      socket.write(head + '\r\n');
      readHead(socket, (line, response, rest) => {
        const status = Number(line.split(' ')[1]);
        if (status !== 101) {
          stream.respond({ ':status': status || 502 }, { endStream: true });
          socket.destroy();
          return;
        }
        stream.respond(carried(response, { ':status': 200 }));
        join(socket, stream, rest);
      });
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const url = `ws://127.0.0.1:${server.address().port}`;
    const child = spawn(command[0], [url, ...command.slice(1)], { stdio: 'inherit' });
    child.on('exit', (code) => process.exit(code === null ? 1 : code));
  });
}

process.on('SIGTERM', () => process.exit(143));
if (mode === 'to-h2') toH2();
else fromH2();
