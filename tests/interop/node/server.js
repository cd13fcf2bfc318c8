#!/usr/bin/env node
// Interop test peer: a `ws` WebSocket server driven by the Rust tests.
//
// Usage: node server.js [--deflate] [--path /some/path] [--protocols a,b]
//                       [--max-lifetime SECS] [--tls CERT.pem KEY.pem]
//
// Contract (see README.md):
//   stdout: exactly one `LISTENING <port>` line once listening, then one
//           `CLOSE <code> <reason>` line per connection that ends (code and
//           reason as received from the client; 1005 = close frame without
//           status, 1006 = no close frame at all).
//   stderr: progress / diagnostics only.
//   Exits when stdin reaches EOF / is closed, on SIGTERM/SIGINT, or after
//   --max-lifetime seconds (default 600, a safety net against leaked children).
'use strict';

const { WebSocketServer } = require('ws');

function usage(msg) {
  if (msg) process.stderr.write(`server.js: ${msg}\n`);
  process.stderr.write(
    'usage: node server.js [--deflate] [--deflate-options JSON] [--path /p] [--protocols a,b] [--max-lifetime SECS] [--tls CERT KEY]\n'
  );
  process.exit(2);
}

const opts = { tls: undefined, deflate: false, deflateOptions: {}, path: undefined, protocols: undefined, maxLifetime: 600 };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--deflate') opts.deflate = true;
    else if (a === '--deflate-options') {
      opts.deflate = true;
      opts.deflateOptions = JSON.parse(value());
    } else if (a === '--path') opts.path = value();
    else if (a === '--protocols') opts.protocols = value().split(',').filter(Boolean);
    else if (a === '--max-lifetime') opts.maxLifetime = Number(value());
    else if (a === '--tls') opts.tls = { cert: value(), key: value() };
    else usage(`unknown argument ${JSON.stringify(a)}`);
  }
  if (!Number.isFinite(opts.maxLifetime) || opts.maxLifetime <= 0) usage('bad --max-lifetime');
}

const log = (msg) => process.stderr.write(`[node-server] ${msg}\n`);
// On Linux, writes to pipes/files from process.stdout are synchronous, so each
// line is visible to the parent immediately.
const out = (line) => process.stdout.write(`${line}\n`);

const FRAGMENT_BINARY = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));

function shutdown(why) {
  log(`exiting: ${why}`);
  process.exit(0);
}

// Exit when the parent drops our stdin (EOF) or goes away.
process.stdin.on('end', () => shutdown('stdin closed'));
process.stdin.on('close', () => shutdown('stdin closed'));
process.stdin.on('error', () => shutdown('stdin error'));
process.stdin.resume();
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
setTimeout(() => shutdown(`max lifetime ${opts.maxLifetime}s reached`), opts.maxLifetime * 1000).unref();

const serverOptions = {
  host: '127.0.0.1',
  port: 0,
  // Compress everything (threshold 0) so even short messages exercise the
  // peer's inflater; ws's default threshold would skip messages < 1 KiB.
  perMessageDeflate: opts.deflate ? { threshold: 0, ...opts.deflateOptions } : false,
  // Never silently truncate what the peer sends us.
  maxPayload: 64 * 1024 * 1024,
};
if (opts.path !== undefined) serverOptions.path = opts.path;
if (opts.protocols !== undefined) {
  // Pick the first protocol offered by the client that we support; none -> no header.
  serverOptions.handleProtocols = (offered) => {
    for (const p of offered) if (opts.protocols.includes(p)) return p;
    return false;
  };
}

if (opts.tls !== undefined) {
  // wss:// on an https server of Node's own, the seed README's "external HTTPS server".
  const fs = require('fs');
  const https = require('https');
  const server = https.createServer({ cert: fs.readFileSync(opts.tls.cert), key: fs.readFileSync(opts.tls.key) });
  delete serverOptions.host;
  delete serverOptions.port;
  serverOptions.server = server;
  server.listen(0, '127.0.0.1');
}

const wss = new WebSocketServer(serverOptions);

wss.on('listening', () => {
  const { port } = wss.address();
  log(`listening on 127.0.0.1:${port} deflate=${opts.deflate} path=${opts.path ?? '(any)'}`);
  out(`LISTENING ${port}`);
});

wss.on('error', (err) => {
  log(`server error: ${err.stack || err}`);
  process.exit(1);
});

wss.on('wsClientError', (err, socket) => {
  log(`rejected handshake: ${err.message}`);
  socket.destroy();
});

let nextId = 1;

wss.on('connection', (ws, req) => {
  const id = nextId++;
  const tag = `conn#${id}`;
  log(
    `${tag} connected url=${req.url} protocol=${JSON.stringify(ws.protocol)} ` +
      `extensions=${JSON.stringify(ws.extensions)}`
  );

  // Ping payloads we sent via the `ping:` command and still await a pong for.
  const pendingPings = [];

  ws.on('error', (err) => log(`${tag} error: ${err.message}`));

  ws.on('ping', (data) => log(`${tag} got ping ${JSON.stringify(data.toString())} (auto-pong)`));

  ws.on('pong', (data) => {
    const text = data.toString();
    log(`${tag} got pong ${JSON.stringify(text)}`);
    const idx = pendingPings.indexOf(text);
    if (idx !== -1) {
      pendingPings.splice(idx, 1);
      ws.send(`pong:${text}`);
    }
  });

  ws.on('close', (code, reason) => {
    const r = reason.toString();
    log(`${tag} CLOSE ${code} ${r}`);
    out(`CLOSE ${code} ${r}`);
  });

  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString();
      const shown = text.length > 80 ? `${JSON.stringify(text.slice(0, 80))}... (${text.length} chars)` : JSON.stringify(text);
      log(`${tag} got text ${shown}`);

      let m;
      if ((m = /^close:(\d+):(.*)$/s.exec(text))) {
        const code = Number(m[1]);
        const reason = m[2];
        log(`${tag} command: close with ${code} ${JSON.stringify(reason)}`);
        if (code === 1005) {
          ws.close(); // close frame with empty payload
        } else if (code === 1006) {
          ws.terminate(); // abnormal closure: drop TCP without a close frame
        } else {
          try {
            ws.close(code, reason);
          } catch (err) {
            log(`${tag} cannot close with ${code}: ${err.message}; terminating`);
            ws.terminate();
          }
        }
        return;
      }
      if ((m = /^ping:(.*)$/s.exec(text))) {
        log(`${tag} command: ping ${JSON.stringify(m[1])}`);
        pendingPings.push(m[1]);
        ws.ping(m[1]);
        return;
      }
      if ((m = /^fragments:(\d+)$/.exec(text))) {
        const n = Number(m[1]);
        log(`${tag} command: send text in ${n} fragments, then binary in 3`);
        if (n === 0) {
          ws.send('');
        } else {
          for (let i = 0; i < n; i++) ws.send(`fragment-${i}`, { fin: i === n - 1 });
        }
        ws.send(FRAGMENT_BINARY.subarray(0, 100), { binary: true, fin: false });
        ws.send(FRAGMENT_BINARY.subarray(100, 200), { binary: true, fin: false });
        ws.send(FRAGMENT_BINARY.subarray(200, 300), { binary: true, fin: true });
        return;
      }
    } else {
      log(`${tag} got binary (${data.length} bytes)`);
    }
    // Plain echo, preserving the message type.
    ws.send(data, { binary: isBinary });
  });
});
