// Mesh mTLS between two real proxies: auto mTLS picks TLS for endpoints that
// run a proxy and plaintext for the rest; STRICT refuses plaintext; PERMISSIVE
// takes both on one port; secure naming refuses a server with the wrong
// identity; the server learns the client's SPIFFE ID (authz by principal).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cluster, endpoints, freePort, fullUpdate, request } from '../../unit/proxy/proxy-test-helpers.ts';
import { PRODUCTPAGE, RATINGS, REVIEWS, issue, openCa, startClientSide, startServerSide } from './mtls-fixtures.ts';
import type { ClientSide, ServerSide } from './mtls-fixtures.ts';

const closers: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function pair(mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE' | undefined): Promise<{ server: ServerSide; client: ClientSide }> {
  const { ca } = await openCa();
  const server = await startServerSide(await issue(ca, REVIEWS), mode === undefined ? {} : { mtls: mode });
  const client = await startClientSide(await issue(ca, PRODUCTPAGE));
  closers.push(() => server.proxy.close(), () => server.app.close(), () => client.proxy.close());
  return { server, client };
}

const viaClient = (client: ClientSide) => request(client.proxy.ports.outbound!, { headers: { host: 'reviews' } });

describe('mesh mTLS between two proxies', () => {
  it('auto mTLS: TLS to an endpoint with a proxy, the server sees the client identity; plaintext to one without', async () => {
    const { server, client } = await pair('STRICT');
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'AUTO', subjectAltNames: [REVIEWS] });
    const reply = await viaClient(client);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, 'reviews GET /');
    assert.equal(server.proxy.stats.ssl_handshake, 1);
    assert.equal(client.proxy.stats.ssl_upstream_handshake, 1);

    // An endpoint without a proxy (the app itself) is dialled in plaintext.
    await client.configure({ port: server.app.port }, { mode: 'AUTO' });
    const plain = await viaClient(client);
    assert.equal(plain.status, 200);
    assert.equal(client.proxy.stats.ssl_upstream_handshake, 1, 'no TLS towards an endpoint without a proxy');
  });

  it('STRICT refuses a plaintext client and logs why; DISABLE in the rule refuses with it', async () => {
    const { server, client } = await pair('STRICT');
    await assert.rejects(request(server.port, { headers: { host: 'reviews' } }), /socket hang up|ECONNRESET/);
    assert.equal(server.proxy.stats.ssl_plaintext_refused, 1);
    assert.ok(server.lines.some((l) => l.reason === 'plaintext'), JSON.stringify(server.lines));
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'DISABLE' });
    const reply = await viaClient(client);
    assert.equal(reply.status, 503, 'the DestinationRule turned TLS off, which a STRICT server refuses');
  });

  it('PERMISSIVE takes plaintext and mTLS on the same port', async () => {
    const { server, client } = await pair('PERMISSIVE');
    assert.equal((await request(server.port, { headers: { host: 'reviews' } })).status, 200);
    await client.configure({ port: server.port, mtlsReady: true });
    assert.equal((await viaClient(client)).status, 200);
    assert.equal(server.proxy.stats.ssl_handshake, 1);
  });

  it('secure naming: a server running as another identity is refused by the client, which logs it', async () => {
    const { server, client } = await pair('STRICT');
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'ISTIO_MUTUAL', subjectAltNames: [RATINGS] });
    const reply = await viaClient(client);
    assert.equal(reply.status, 503);
    assert.equal(client.proxy.stats.ssl_upstream_fail_verify_san, 1);
    assert.ok(client.lines.some((l) => l.reason === 'wrong_identity'), JSON.stringify(client.lines));
    assert.equal(server.app.requests.length, 0);
  });

  it('HTTP/2 clusters negotiate h2 over mTLS', async () => {
    const { server, client } = await pair('STRICT');
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'ISTIO_MUTUAL', subjectAltNames: [REVIEWS] }, 'http2');
    for (let i = 0; i < 3; i++) assert.equal((await viaClient(client)).status, 200);
    assert.equal(server.proxy.stats.ssl_handshake, 1, 'one multiplexed connection');
  });

  it('authorization by principal works through mTLS', async () => {
    const { server, client } = await pair('STRICT');
    const allowOnly = (principal: string) => ({
      destinationPort: 9080,
      custom: [],
      deny: [],
      audit: [],
      allow: [{ name: 'AuthorizationPolicy/default/only', rules: [{ from: [{ source: { principals: [principal.slice('spiffe://'.length)] } }] }] }],
    });
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'ISTIO_MUTUAL', subjectAltNames: [REVIEWS] });
    await server.configure({ mtls: 'STRICT', authz: allowOnly(PRODUCTPAGE) });
    assert.equal((await viaClient(client)).status, 200);
    await server.configure({ mtls: 'STRICT', authz: allowOnly(RATINGS) });
    assert.equal((await viaClient(client)).status, 403);
  });

  it('TCP relays to an mTLS endpoint are wrapped in mTLS', async () => {
    const { ca } = await openCa();
    const server = await startServerSide(await issue(ca, REVIEWS), { mtls: 'STRICT', protocol: 'tcp', routeConfig: undefined, tcpRoute: { clusters: [{ cluster: 'inbound|9080||', weight: 100 }] } });
    const client = await startClientSide(await issue(ca, PRODUCTPAGE));
    closers.push(() => server.proxy.close(), () => server.app.close(), () => client.proxy.close());
    const port = await freePort();
    // A TCP port on the client proxy relaying to the server proxy: the relay dials mesh mTLS.
    await client.proxy.apply(
      fullUpdate([
        { type: 'listener', name: 'tcp', direction: 'gateway', address: '127.0.0.1', port, protocol: 'tcp', tcpRoute: { clusters: [{ cluster: 'reviews', weight: 100 }] } },
        cluster('reviews', 'ROUND_ROBIN', { protocol: 'tcp', tls: { mode: 'AUTO', subjectAltNames: [REVIEWS] } }),
        endpoints('reviews', [{ address: '127.0.0.1', port: server.port, healthy: true, mtlsReady: true }]),
      ]),
    );
    const reply = await request(port, { headers: { host: 'reviews' } });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, 'reviews GET /');
    assert.equal(server.proxy.stats.ssl_handshake, 1);
    assert.equal(client.proxy.stats.ssl_upstream_handshake, 1);
  });
});
