// Routing through a running sidecar: by Host, by absolute-form target, through
// CONNECT tunnels, by headers and uri, with rewrites, redirects and direct
// responses; no route → 404.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import {
  cluster,
  endpoints,
  fullUpdate,
  rawRequest,
  request,
  route,
  routeConfig,
  startSidecar,
  startUpstream,
  toCluster,
  vhost,
} from './proxy-test-helpers.ts';
import type { Upstream } from './proxy-test-helpers.ts';

describe('proxy routing', () => {
  let proxy: RunningProxy;
  let reviews: Upstream;
  let ratings: Upstream;
  let port: number;

  before(async () => {
    reviews = await startUpstream('reviews');
    ratings = await startUpstream('ratings');
    proxy = await startSidecar();
    port = proxy.ports.outbound!;
    await proxy.apply(
      fullUpdate([
        routeConfig('outbound', [
          vhost('reviews', ['reviews', 'reviews:9080', 'reviews.default.svc.cluster.local'], [
            route('by-header', [{ headers: [{ name: 'end-user', match: { exact: 'jason' } }] }], toCluster('ratings')),
            route('without-header', [{ uri: { prefix: '/guarded' }, headers: [{ name: 'x-token', invert: true }] }], { directResponse: { status: 403, body: 'token required' } }),
            route('exact', [{ uri: { exact: '/exact' } }], toCluster('ratings')),
            route('regex', [{ uri: { regex: '/items/[0-9]+' } }], toCluster('ratings')),
            route('method', [{ method: { exact: 'DELETE' } }], { directResponse: { status: 405 } }),
            route('query', [{ queryParams: [{ name: 'version', match: { exact: 'v2' } }] }], toCluster('ratings')),
            route('case', [{ uri: { prefix: '/caseless' }, ignoreUriCase: true }], toCluster('ratings')),
            route('rewrite-prefix', [{ uri: { prefix: '/api/v1/' } }], toCluster('reviews', { rewrite: { uri: '/v1/' } })),
            route('rewrite-whole', [{ uri: { exact: '/old' } }], toCluster('reviews', { rewrite: { uri: '/new', authority: 'reviews.internal' } })),
            route('redirect', [{ uri: { prefix: '/moved' } }], { redirect: { uri: '/elsewhere', authority: 'web.example.com', code: 301 } }),
            route('mutate', [{ uri: { prefix: '/mutate' } }], toCluster('reviews', { requestHeaders: { set: [['x-set', 'yes']], add: [['x-added', '1']], remove: ['x-secret'] }, responseHeaders: { set: [['x-resp', 'r']], remove: ['x-upstream'] } })),
            route('default', [], toCluster('reviews')),
          ]),
          vhost('wild', ['*.example.com'], [route('all', [], { directResponse: { status: 200, body: 'wildcard' } })]),
        ]),
        cluster('reviews'),
        endpoints('reviews', [reviews.port]),
        cluster('ratings'),
        endpoints('ratings', [ratings.port]),
      ]),
    );
  });

  after(async () => {
    await proxy.close();
    await reviews.close();
    await ratings.close();
  });

  it('routes by Host header, with and without port', async () => {
    const a = await request(port, { path: '/x', headers: { host: 'reviews' } });
    assert.equal(a.status, 200);
    assert.equal(a.body, 'reviews GET /x');
    const b = await request(port, { path: '/y?q=1', headers: { host: 'REVIEWS:9080' } });
    assert.equal(b.body, 'reviews GET /y?q=1');
  });

  it('routes absolute-form targets by their authority, sending origin-form upstream', async () => {
    const reply = await rawRequest(port, 'GET http://reviews:9080/abs?x=1 HTTP/1.1\r\nHost: ignored\r\nProxy-Connection: keep-alive\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1.1 200/);
    assert.match(reply, /reviews GET \/abs\?x=1$/);
    const seen = reviews.requests.at(-1)!;
    assert.equal(seen.url, '/abs?x=1');
    assert.equal(seen.headers.host, 'reviews:9080');
    assert.equal(seen.headers['proxy-connection'], undefined);
  });

  it('tunnels CONNECT and routes the requests inside by Host', async () => {
    const socket = net.connect(port, '127.0.0.1');
    const data: Buffer[] = [];
    socket.on('data', (c) => data.push(c));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('CONNECT reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n');
    await waitFor(() => Buffer.concat(data).toString().includes('\r\n\r\n'));
    assert.match(Buffer.concat(data).toString(), /^HTTP\/1.1 200 Connection Established\r\n\r\n$/);
    data.length = 0;
    socket.write('GET /tunnelled HTTP/1.1\r\nHost: reviews:9080\r\n\r\n');
    await waitFor(() => Buffer.concat(data).toString().includes('reviews GET /tunnelled'));
    socket.write('GET /second HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n');
    await closed;
    assert.match(Buffer.concat(data).toString(), /reviews GET \/second$/);
  });

  it('serves fetch through NODE_USE_ENV_PROXY (CONNECT) and http.get through HTTP_PROXY (absolute-form)', async () => {
    const script = `
      const http = require('node:http');
      const viaFetch = await (await fetch('http://reviews:9080/from-fetch')).text();
      const viaHttp = await new Promise((resolve, reject) => http.get('http://reviews:9080/from-http', (res) => {
        let body = ''; res.on('data', (c) => body += c); res.on('end', () => resolve(body));
      }).on('error', reject));
      process.stdout.write(JSON.stringify([viaFetch, viaHttp]));`;
    const tunnelsBefore = proxy.stats.downstream_cx_connect_tunnel;
    const out = await runNode(['--input-type=commonjs', '-e', `(async () => { ${script} })().catch((e) => { console.error(e); process.exit(1); })`], {
      NODE_USE_ENV_PROXY: '1',
      HTTP_PROXY: `http://127.0.0.1:${port}`,
      http_proxy: `http://127.0.0.1:${port}`,
      NO_PROXY: '',
      no_proxy: '',
    });
    assert.deepEqual(JSON.parse(out), ['reviews GET /from-fetch', 'reviews GET /from-http']);
    assert.ok(proxy.stats.downstream_cx_connect_tunnel > tunnelsBefore, 'fetch went through a CONNECT tunnel');
  });

  it('matches headers, inverted headers, methods, query params and uri exact/regex/case', async () => {
    assert.equal((await request(port, { headers: { host: 'reviews', 'end-user': 'jason' } })).body, 'ratings GET /');
    assert.equal((await request(port, { headers: { host: 'reviews', 'end-user': 'other' } })).body, 'reviews GET /');
    const guarded = await request(port, { path: '/guarded', headers: { host: 'reviews' } });
    assert.equal(guarded.status, 403);
    assert.equal(guarded.body, 'token required');
    assert.equal(guarded.headers.server, 'jibe');
    assert.equal((await request(port, { path: '/guarded', headers: { host: 'reviews', 'x-token': 't' } })).body, 'reviews GET /guarded');
    assert.equal((await request(port, { path: '/exact', headers: { host: 'reviews' } })).body, 'ratings GET /exact');
    assert.equal((await request(port, { path: '/exact/more', headers: { host: 'reviews' } })).body, 'reviews GET /exact/more');
    assert.equal((await request(port, { path: '/items/42', headers: { host: 'reviews' } })).body, 'ratings GET /items/42');
    // Full match: a regex never matches a longer path by accident.
    assert.equal((await request(port, { path: '/items/42/x', headers: { host: 'reviews' } })).body, 'reviews GET /items/42/x');
    assert.equal((await request(port, { method: 'DELETE', path: '/z', headers: { host: 'reviews' } })).status, 405);
    assert.equal((await request(port, { path: '/q?a=1&version=v2', headers: { host: 'reviews' } })).body, 'ratings GET /q?a=1&version=v2');
    assert.equal((await request(port, { path: '/q?version=v1', headers: { host: 'reviews' } })).body, 'reviews GET /q?version=v1');
    assert.equal((await request(port, { path: '/CaseLess/a', headers: { host: 'reviews' } })).body, 'ratings GET /CaseLess/a');
  });

  it('matches wildcard domains', async () => {
    const reply = await request(port, { headers: { host: 'shop.example.com' } });
    assert.equal(reply.body, 'wildcard');
    assert.equal((await request(port, { headers: { host: 'example.com' } })).status, 404);
  });

  it('rewrites the matched prefix, the whole path, and the authority', async () => {
    assert.equal((await request(port, { path: '/api/v1/users?id=3', headers: { host: 'reviews' } })).body, 'reviews GET /v1/users?id=3');
    assert.equal((await request(port, { path: '/old', headers: { host: 'reviews' } })).body, 'reviews GET /new');
    const seen = reviews.requests.at(-1)!;
    assert.equal(seen.headers.host, 'reviews.internal');
    assert.equal(seen.headers['x-forwarded-host'], 'reviews');
  });

  it('redirects with Location and keeps the query', async () => {
    const reply = await request(port, { path: '/moved/a?k=v', headers: { host: 'reviews' } });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, 'http://web.example.com/elsewhere?k=v');
    assert.equal(reply.headers.server, 'jibe');
  });

  it('applies request and response header mutations', async () => {
    const reply = await request(port, { path: '/mutate', headers: { host: 'reviews', 'x-secret': 's', 'x-set': 'no' } });
    const seen = reviews.requests.at(-1)!;
    assert.equal(seen.headers['x-set'], 'yes');
    assert.equal(seen.headers['x-added'], '1');
    assert.equal(seen.headers['x-secret'], undefined);
    assert.equal(reply.headers['x-resp'], 'r');
    assert.equal(reply.headers['x-upstream'], undefined);
  });

  it('answers 404 with no route for unknown authorities, and keeps serving', async () => {
    const reply = await request(port, { headers: { host: 'unknown:1234' } });
    assert.equal(reply.status, 404);
    assert.equal(reply.headers.server, 'jibe');
    assert.equal((await request(port, { headers: { host: 'reviews' } })).status, 200);
  });
});

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), 'condition not met in time');
}

function runNode(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}
