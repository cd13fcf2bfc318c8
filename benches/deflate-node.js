// The seed library's permessage-deflate (ws under Node) compressing and inflating the same
// messages as benches/deflate.rs, through ws's own PerMessageDeflate class (zlib underneath).
// Usage: node benches/deflate-node.js COUNT SIZE [LEVEL] ; prints JSON on one line.
'use strict';
const path = require('path');
const PerMessageDeflate = require(
  path.join(__dirname, '../tests/interop/node/node_modules/ws/lib/permessage-deflate.js')
);

const count = Number(process.argv[2] || 1000);
const size = Number(process.argv[3] || 16384);
// zlib level; ws's default (none given) is zlib's, 6.
const level = Number(process.argv[4] || 6);

// Same generator as the Rust side: JSON-like records with a counter.
function message(i) {
  let s = '';
  let n = 0;
  while (s.length < size) {
    s += `{"id":${i * 1000 + n},"user":"user-${(i + n) % 97}","text":"message number ${n} of batch ${i}","ok":${n % 3 === 0}},`;
    n++;
  }
  return Buffer.from(s.slice(0, size));
}
const messages = Array.from({ length: count }, (_, i) => message(i));

const server = new PerMessageDeflate({ threshold: 0, zlibDeflateOptions: { level } }, true);
server.accept([{}]);
const client = new PerMessageDeflate({ threshold: 0 }, false);
client.accept([{}]);

function compressAll(i, out, done) {
  if (i === count) return done(out);
  server.compress(messages[i], true, (err, data) => {
    if (err) throw err;
    out.push(data);
    compressAll(i + 1, out, done);
  });
}

function inflateAll(i, compressed, done) {
  if (i === count) return done();
  client.decompress(compressed[i], true, (err, data) => {
    if (err) throw err;
    if (data.length !== size) throw new Error('bad length');
    inflateAll(i + 1, compressed, done);
  });
}

const t0 = process.hrtime.bigint();
compressAll(0, [], (compressed) => {
  const t1 = process.hrtime.bigint();
  inflateAll(0, compressed, () => {
    const t2 = process.hrtime.bigint();
    const wire = compressed.reduce((a, b) => a + b.length, 0);
    console.log(JSON.stringify({
      compress_s: Number(t1 - t0) / 1e9,
      inflate_s: Number(t2 - t1) / 1e9,
      input_bytes: count * size,
      wire_bytes: wire,
    }));
  });
});
