// The smallest reverse proxy node:http allows (keep-alive agent, streamed bodies,
// no routing): a reference row showing what the Node HTTP stack itself costs on
// this machine, so the sidecar's figures split into Node's floor and Jibe's own work.
// Plain JavaScript, like the compiled sidecar, so it does not carry Node's type stripper.
// Prints `JIBE_SIDECAR_READY {"outbound":<port>}` once it listens.
//
//   node test/bench/run-node-http-proxy.mjs --upstream-port <port>
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

// Loaded with require like the sidecar does (proxy/http/node-http.ts): an ESM
// import of node:http reads its lazy exports and loads undici.
const http = createRequire(import.meta.url)('node:http');
const READY_PREFIX = 'JIBE_SIDECAR_READY ';

const { values } = parseArgs({ options: { 'upstream-port': { type: 'string' } } });
if (values['upstream-port'] === undefined) throw new Error('--upstream-port is required');
const upstreamPort = Number(values['upstream-port']);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 256 });

const server = http.createServer((req, res) => {
  const upstream = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
    upstreamRes.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${READY_PREFIX}${JSON.stringify({ outbound: port, admin: 0 })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
