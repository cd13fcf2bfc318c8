// uWebSockets (C++; this is its Node.js binding, uWebSockets.js, repacked on npm as uws-pack)
// as a peer in elo-bench. Its event loop, parser, buffers and pub/sub are C++; JavaScript
// runs once per message received (the echo's send, the relay's publish), never per delivery.
//
//   node bench/node/uws-server.mjs echo [--tls CERT KEY]   every data message sent back
//   node bench/node/uws-server.mjs relay [--deflate]       each message to every other client
//                                                          on the same request path
// Prints "READY 127.0.0.1:PORT" once listening. Install: npm ci --prefix bench/node
import {
  App, SSLApp, DISABLED, SHARED_COMPRESSOR, us_socket_local_port,
} from 'uws-pack';

const [mode, ...rest] = process.argv.slice(2);
if (mode !== 'echo' && mode !== 'relay') {
  process.stderr.write('usage: uws-server.mjs echo [--tls CERT KEY] | relay [--deflate]\n');
  process.exit(2);
}
const tls = rest.indexOf('--tls');
const app = tls >= 0
  ? SSLApp({ cert_file_name: rest[tls + 1], key_file_name: rest[tls + 2] })
  : App();

// Limits wide enough for the benchmarks' 1 MiB messages, and a backlog no closed-loop run
// reaches: uWebSockets drops a send past maxBackpressure, which would stall the load.
const options = {
  maxPayloadLength: 16 << 20,
  maxBackpressure: 64 << 20,
  idleTimeout: 0,
  compression: rest.includes('--deflate') ? SHARED_COMPRESSOR : DISABLED,
  upgrade: (res, req, context) => {
    res.upgrade(
      { path: req.getUrl() },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
};

if (mode === 'echo') {
  options.message = (ws, message, isBinary) => {
    ws.send(message, isBinary);
  };
} else {
  options.open = (ws) => {
    ws.subscribe(ws.getUserData().path);
  };
  // `publish` on a socket reaches every subscriber of the topic but that socket.
  options.message = (ws, message, isBinary) => {
    ws.publish(ws.getUserData().path, message, isBinary, true);
  };
}

app.ws('/*', options).listen('127.0.0.1', 0, (token) => {
  if (!token) {
    process.stderr.write('uws: cannot listen\n');
    process.exit(1);
  }
  process.stdout.write(`READY 127.0.0.1:${us_socket_local_port(token)}\n`);
});
