#!/usr/bin/env node
// Self-test of the interop peers: runs client.js against server.js (which
// implements the same command protocol as the Rust server under test), the
// same way the Rust tests drive them. `npm test` runs this. Exit 0 = all good.
'use strict';

const { spawn } = require('child_process');
const path = require('path');
const readline = require('readline');

const NODE = process.execPath;
const here = (f) => path.join(__dirname, f);
const verbose = process.argv.includes('-v');

let passed = 0;
let failed = 0;

function startServer(args) {
  const child = spawn(NODE, [here('server.js'), ...args], { stdio: ['pipe', 'pipe', verbose ? 'inherit' : 'ignore'] });
  const lines = [];
  let waiters = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    waiters.forEach((w) => w());
    waiters = [];
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  async function nextLine(ms = 5000) {
    const deadline = Date.now() + ms;
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error('timeout waiting for server stdout line');
      await new Promise((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return lines.shift();
  }
  return { child, nextLine, exited };
}

function runClient(args) {
  return new Promise((resolve) => {
    const child = spawn(NODE, [here('client.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL - ${name}: ${err.message}`);
  }
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function withServer(args, fn) {
  const srv = startServer(args);
  try {
    const first = await srv.nextLine();
    const m = /^LISTENING (\d+)$/.exec(first);
    expect(m, `bad first line ${JSON.stringify(first)}`);
    await fn(Number(m[1]), srv);
  } finally {
    // Dropping stdin must make the server exit by itself.
    srv.child.stdin.end();
    const timer = setTimeout(() => srv.child.kill('SIGKILL'), 3000);
    const { code, signal } = await srv.exited;
    clearTimeout(timer);
    expect(code === 0 && signal === null, `server did not exit cleanly on stdin EOF (code ${code}, signal ${signal})`);
  }
}

async function clientOk(args, { stdout = 'OK\n' } = {}) {
  const r = await runClient(args);
  expect(r.code === 0, `client exit ${r.code}\n${r.stderr}`);
  expect(r.stdout === stdout, `client stdout ${JSON.stringify(r.stdout)}, expected ${JSON.stringify(stdout)}`);
}

async function main() {
  for (const deflate of [false, true]) {
    const flag = deflate ? ['--deflate'] : [];
    const sfx = deflate ? ' (deflate)' : '';

    await check(`full conversation${sfx}`, () =>
      withServer(flag, async (port, srv) => {
        await clientOk([`ws://127.0.0.1:${port}/`, ...(deflate ? ['--require-deflate'] : [])]);
        expect((await srv.nextLine()) === 'CLOSE 4001 bye-from-node', 'server did not report CLOSE 4001 bye-from-node');
      })
    );

    await check(`--expect-close 4000 with reason containing ':' and spaces${sfx}`, () =>
      withServer(flag, async (port, srv) => {
        await clientOk([`ws://127.0.0.1:${port}/`, ...flag, '--expect-close', '4000', 'going: away now']);
        expect((await srv.nextLine()) === 'CLOSE 4000 going: away now', 'server did not get the echoed close');
      })
    );
  }

  await check('--expect-close 1000 with empty reason', () =>
    withServer([], async (port, srv) => {
      await clientOk([`ws://127.0.0.1:${port}`, '--expect-close', '1000', '']);
      expect((await srv.nextLine()) === 'CLOSE 1000 ', 'server did not get the echoed close');
    })
  );

  await check('--expect-close 1005 (close frame without status)', () =>
    withServer([], async (port) => {
      await clientOk([`ws://127.0.0.1:${port}`, '--expect-close', '1005', '']);
    })
  );

  await check('--path accepts the right path, subprotocol negotiated', () =>
    withServer(['--path', '/chat', '--protocols', 'b,c'], async (port) => {
      await clientOk([`ws://127.0.0.1:${port}/chat?x=1`, '--protocol', 'a', '--protocol', 'b']);
    })
  );

  await check('--expect-status 400 on wrong path', () =>
    withServer(['--path', '/chat'], async (port) => {
      await clientOk([`ws://127.0.0.1:${port}/nope`, '--expect-status', '400'], {
        stdout: 'STATUS 400\nBODY "Bad Request"\nOK\n',
      });
    })
  );

  await check('negative: --expect-status 404 fails on a 400', () =>
    withServer(['--path', '/chat'], async (port) => {
      const r = await runClient([`ws://127.0.0.1:${port}/nope`, '--expect-status', '404']);
      expect(r.code === 1 && /FAIL: expected HTTP status 404, got 400/.test(r.stderr), `unexpected: ${r.code} ${r.stderr}`);
    })
  );

  await check('negative: --expect-status fails when handshake succeeds', () =>
    withServer([], async (port) => {
      const r = await runClient([`ws://127.0.0.1:${port}/`, '--expect-status', '400']);
      expect(r.code === 1 && /FAIL: handshake succeeded/.test(r.stderr), `unexpected: ${r.code} ${r.stderr}`);
    })
  );

  await check('negative: a server that flips text to binary is caught', async () => {
    const { WebSocketServer } = require('ws');
    const bad = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => bad.on('listening', r));
    bad.on('connection', (ws) => ws.on('message', (d) => ws.send(d, { binary: true })));
    try {
      const r = await runClient([`ws://127.0.0.1:${bad.address().port}/`, '--timeout', '5']);
      expect(
        r.code === 1 && /FAIL: text echo: expected a text message, got binary message/.test(r.stderr) && r.stdout === '',
        `unexpected: ${r.code} ${r.stderr}`
      );
    } finally {
      for (const c of bad.clients) c.terminate();
      bad.close();
    }
  });

  await check('negative: a server that echoes a different close code is caught', async () => {
    const { WebSocketServer } = require('ws');
    const bad = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => bad.on('listening', r));
    bad.on('connection', (ws) => ws.on('message', () => ws.close(4999, 'nope')));
    try {
      const r = await runClient([`ws://127.0.0.1:${bad.address().port}/`, '--expect-close', '4000', 'x', '--timeout', '5']);
      expect(r.code === 1 && /FAIL: .*expected close \(code 4000, reason "x"\), got close event \(code 4999/.test(r.stderr), `unexpected: ${r.code} ${r.stderr}`);
    } finally {
      bad.close();
    }
  });

  await check('negative: a server that never answers hits the timeout', async () => {
    const { WebSocketServer } = require('ws');
    const bad = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => bad.on('listening', r));
    try {
      const r = await runClient([`ws://127.0.0.1:${bad.address().port}/`, '--timeout', '1']);
      expect(r.code === 1 && /FAIL: timed out after 1s during step: text echo/.test(r.stderr), `unexpected: ${r.code} ${r.stderr}`);
    } finally {
      for (const c of bad.clients) c.terminate();
      bad.close();
    }
  });

  await check('negative: connection refused fails with exit 1', async () => {
    const srv = startServer([]);
    const port = Number(/^LISTENING (\d+)$/.exec(await srv.nextLine())[1]);
    srv.child.kill('SIGTERM');
    const { code } = await srv.exited;
    expect(code === 0, `server exit on SIGTERM: ${code}`);
    const r = await runClient([`ws://127.0.0.1:${port}/`]);
    expect(r.code === 1 && /FAIL: .*ECONNREFUSED/.test(r.stderr), `unexpected: ${r.code} ${r.stderr}`);
  });

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
