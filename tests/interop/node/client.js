#!/usr/bin/env node
// Interop test peer: a `ws` WebSocket client that runs a scripted conversation
// against the server under test.
//
// Usage:
//   node client.js URL [--deflate] [--require-deflate] [--protocol P]...
//                      [--timeout SECS]
//   node client.js URL [...] --expect-close CODE REASON
//   node client.js URL [...] --expect-status STATUS
//
// Contract (see README.md): prints `OK` on stdout and exits 0 on success;
// exits 1 with a `FAIL: ...` line on stderr on any failed assertion, error or
// timeout (default 20 s); exits 2 on bad usage. Progress goes to stderr.
'use strict';

const WebSocket = require('ws');

function usage(msg) {
  if (msg) process.stderr.write(`client.js: ${msg}\n`);
  process.stderr.write(
    'usage: node client.js URL [--ca FILE] [--echo-only] [--deflate] [--require-deflate] [--deflate-options JSON] [--protocol P]... [--timeout SECS]\n' +
      '                          [--expect-close CODE REASON | --expect-status STATUS]\n'
  );
  process.exit(2);
}

const opts = {
  url: undefined,
  deflate: false,
  deflateOptions: {},
  requireDeflate: false,
  protocols: [],
  timeout: 20,
  expectClose: undefined,
  expectStatus: undefined,
  ca: undefined,
  echoOnly: false,
};
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--ca') opts.ca = require('fs').readFileSync(value());
    else if (a === '--echo-only') opts.echoOnly = true;
    else if (a === '--deflate') opts.deflate = true;
    else if (a === '--require-deflate') opts.deflate = opts.requireDeflate = true;
    else if (a === '--deflate-options') {
      opts.deflate = opts.requireDeflate = true;
      opts.deflateOptions = JSON.parse(value());
    }
    else if (a === '--protocol') opts.protocols.push(value());
    else if (a === '--timeout') opts.timeout = Number(value());
    else if (a === '--expect-close') {
      const code = Number(value());
      const reason = value(); // may be the empty string ''
      if (!Number.isInteger(code)) usage('--expect-close CODE must be an integer');
      opts.expectClose = { code, reason };
    } else if (a === '--expect-status') {
      const status = Number(value());
      if (!Number.isInteger(status)) usage('--expect-status STATUS must be an integer');
      opts.expectStatus = status;
    } else if (a.startsWith('--')) usage(`unknown option ${JSON.stringify(a)}`);
    else if (opts.url === undefined) opts.url = a;
    else usage(`unexpected argument ${JSON.stringify(a)}`);
  }
  if (opts.url === undefined) usage('missing URL');
  if (opts.expectClose && opts.expectStatus !== undefined) {
    usage('--expect-close and --expect-status are mutually exclusive');
  }
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('bad --timeout');
}

const log = (msg) => process.stderr.write(`[node-client] ${msg}\n`);

function fail(msg) {
  process.stderr.write(`[node-client] FAIL: ${msg}\n`);
  process.exit(1);
}

function pass() {
  log('all steps passed');
  process.stdout.write('OK\n');
  process.exit(0);
}

function show(v) {
  if (Buffer.isBuffer(v)) {
    return v.length > 32 ? `<${v.length} bytes ${v.subarray(0, 32).toString('hex')}...>` : `<${v.length} bytes ${v.toString('hex')}>`;
  }
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 120)}... (${String(v).length} chars)` : s;
}

function assert(cond, msg) {
  if (!cond) fail(msg);
}

let currentStep = 'connecting';
setTimeout(() => fail(`timed out after ${opts.timeout}s during step: ${currentStep}`), opts.timeout * 1000).unref();

const ws = new WebSocket(opts.url, opts.protocols.length ? opts.protocols : undefined, {
  // Offer permessage-deflate only with --deflate; compress every message
  // (threshold 0) so short messages also exercise the server's inflater.
  perMessageDeflate: opts.deflate ? { threshold: 0, ...opts.deflateOptions } : false,
  maxPayload: 64 * 1024 * 1024,
  handshakeTimeout: opts.timeout * 1000,
  // --ca: trust this root for wss:// (certificates made by the test).
  ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
});

// ---------------------------------------------------------------------------
// Event plumbing: every event lands in one queue; steps await the next event
// and fail on anything unexpected (nothing is silently skipped).
const events = [];
let waiter = null;
function push(ev) {
  events.push(ev);
  if (waiter) {
    const w = waiter;
    waiter = null;
    w();
  }
}
async function nextEvent() {
  while (events.length === 0) await new Promise((resolve) => (waiter = resolve));
  return events.shift();
}
function describe(ev) {
  switch (ev.type) {
    case 'message':
      return `${ev.isBinary ? 'binary' : 'text'} message ${show(ev.isBinary ? ev.data : ev.data.toString())}`;
    case 'close':
      return `close event (code ${ev.code}, reason ${show(ev.reason)})`;
    case 'ping':
    case 'pong':
      return `${ev.type} ${show(ev.data.toString())}`;
    default:
      return ev.type;
  }
}
async function expectEvent(type) {
  const ev = await nextEvent();
  if (ev.type !== type) fail(`${currentStep}: expected ${type}, got ${describe(ev)}`);
  return ev;
}

ws.on('message', (data, isBinary) => push({ type: 'message', data, isBinary }));
ws.on('ping', (data) => push({ type: 'ping', data }));
ws.on('pong', (data) => push({ type: 'pong', data }));
ws.on('close', (code, reason) => push({ type: 'close', code, reason: reason.toString() }));
ws.on('error', (err) => fail(`${currentStep}: websocket error: ${err.message}`));

// ---------------------------------------------------------------------------
// --expect-status: the handshake must be refused with a given HTTP status.
if (opts.expectStatus !== undefined) {
  ws.on('open', () => fail(`handshake succeeded, expected HTTP status ${opts.expectStatus}`));
  ws.on('unexpected-response', (req, res) => {
    log(`handshake refused: HTTP ${res.statusCode} ${res.statusMessage}`);
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('error', (err) => fail(`reading refusal body: ${err.message}`));
    res.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      process.stdout.write(`STATUS ${res.statusCode}\n`);
      process.stdout.write(`BODY ${JSON.stringify(body)}\n`);
      if (res.statusCode !== opts.expectStatus) {
        fail(`expected HTTP status ${opts.expectStatus}, got ${res.statusCode} (body ${show(body)})`);
      }
      pass();
    });
  });
} else {
  ws.on('open', () => {
    log(
      `connected to ${opts.url} protocol=${JSON.stringify(ws.protocol)} ` +
        `extensions=${JSON.stringify(ws.extensions)}`
    );
    run().catch((err) => fail(`${currentStep}: ${err.stack || err}`));
  });
}

function step(name) {
  currentStep = name;
  log(`step: ${name}`);
}

async function expectMessage(expected, isBinary) {
  const ev = await expectEvent('message');
  const kind = isBinary ? 'binary' : 'text';
  assert(
    ev.isBinary === isBinary,
    `${currentStep}: expected a ${kind} message, got ${describe(ev)}`
  );
  if (isBinary) {
    assert(
      Buffer.compare(ev.data, expected) === 0,
      `${currentStep}: binary mismatch: expected ${show(expected)}, got ${show(ev.data)}`
    );
  } else {
    const got = ev.data.toString();
    assert(got === expected, `${currentStep}: text mismatch: expected ${show(expected)}, got ${show(got)}`);
  }
}

async function expectClose(code, reason) {
  const ev = await expectEvent('close');
  assert(
    ev.code === code && ev.reason === reason,
    `${currentStep}: expected close (code ${code}, reason ${show(reason)}), got ${describe(ev)}`
  );
}

const bytes = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i % 256));

async function run() {
  if (opts.requireDeflate) {
    assert(
      ws.extensions.includes('permessage-deflate'),
      `server did not accept permessage-deflate (extensions=${JSON.stringify(ws.extensions)})`
    );
  }

  if (opts.expectClose) {
    const { code, reason } = opts.expectClose;
    step(`ask server to close with ${code} ${show(reason)}`);
    ws.send(`close:${code}:${reason}`);
    await expectClose(code, reason);
    return pass();
  }

  step('text echo');
  ws.send('hello');
  await expectMessage('hello', false);

  step('multi-byte UTF-8 text echo');
  const utf8 = 'héllo wörld ✓ 🎉';
  ws.send(utf8);
  await expectMessage(utf8, false);

  step('empty text echo');
  ws.send('');
  await expectMessage('', false);

  step('binary 0..255 echo');
  const b256 = bytes(256);
  ws.send(b256);
  await expectMessage(b256, true);

  step('binary 125/126/65535/65536-byte echo (length-form boundaries)');
  for (const n of [125, 126, 65535, 65536]) {
    const b = bytes(n);
    ws.send(b);
    await expectMessage(b, true);
  }

  step('binary 70000-byte echo (64-bit length)');
  const b70k = Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7 + 3) % 256));
  ws.send(b70k);
  await expectMessage(b70k, true);

  step('fragmented text echo');
  const parts = ['frag', 'mented ', 'mess', 'age ✓'];
  parts.forEach((p, i) => ws.send(p, { fin: i === parts.length - 1 }));
  await expectMessage(parts.join(''), false);

  step('fragmented binary echo');
  const fb = bytes(1000);
  ws.send(fb.subarray(0, 10), { binary: true, fin: false });
  ws.send(fb.subarray(10, 500), { binary: true, fin: false });
  ws.send(fb.subarray(500), { binary: true, fin: true });
  await expectMessage(fb, true);

  step('client ping "abc" -> pong "abc"');
  ws.ping('abc');
  {
    const ev = await expectEvent('pong');
    assert(ev.data.toString() === 'abc', `${currentStep}: expected pong "abc", got ${describe(ev)}`);
  }

  if (!opts.echoOnly) {
    await serverCommands();
  }

  step('close 4001 "bye-from-node" and expect it echoed');
  ws.close(4001, 'bye-from-node');
  await expectClose(4001, 'bye-from-node');

  assert(events.length === 0, `unexpected events after close: ${events.map(describe).join(', ')}`);
  return pass();
}

// The steps that need the command server (tests/interop/node/README.md), skipped with
// --echo-only against a plain echo server.
async function serverCommands() {
  step('server ping via "ping:xyz" -> auto-pong -> text "pong:xyz"');
  ws.send('ping:xyz');
  {
    const ev = await expectEvent('ping');
    assert(ev.data.toString() === 'xyz', `${currentStep}: expected ping "xyz", got ${describe(ev)}`);
  }
  await expectMessage('pong:xyz', false);

  step('server fragmented sends via "fragments:4"');
  ws.send('fragments:4');
  await expectMessage('fragment-0fragment-1fragment-2fragment-3', false);
  await expectMessage(bytes(300), true);
}
