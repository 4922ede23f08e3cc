// Mesh mTLS options against certificates from the real CA: who gets in, who
// is refused, and that the refusal says why.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { CertificateAuthority } from '../../../../core/ca/certificate-authority.ts';
import type { WorkloadCertificate } from '../../../../proxy/identity/identity-manager.ts';
import { looksLikeTls, meshClientOptions, meshSecureContext, meshServerOptions, peerSpiffeId } from '../../../../proxy/identity/mesh-tls.ts';
import { certificateExpiry, generateKeyAndCsr } from '../../../../proxy/identity/workload-key.ts';
import { openStore } from '../../ca/ca-fixtures.ts';

const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';

async function issue(ca: CertificateAuthority, spiffeId: string): Promise<WorkloadCertificate> {
  const { keyPem, csrPem } = await generateKeyAndCsr(spiffeId);
  const signed = await ca.sign(csrPem, { spiffeId });
  return { spiffeId, keyPem, certChainPem: signed.certChainPem, trustBundle: ca.trustBundle(), expiresAt: certificateExpiry(signed.certChainPem) };
}

async function serve(cert: WorkloadCertificate): Promise<{ port: number; peers: Array<string | undefined>; close: () => Promise<void> }> {
  const peers: Array<string | undefined> = [];
  const server = tls.createServer(meshServerOptions(cert), (socket) => {
    peers.push(peerSpiffeId(socket));
    socket.end('hello ' + socket.alpnProtocol);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, peers, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function dial(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    let data = '';
    socket.on('data', (d) => (data += d));
    // Under TLS 1.3 a refused client certificate surfaces after the handshake, as a close without an answer.
    socket.on('end', () => (data === '' ? reject(new Error('closed without an answer')) : resolve(data)));
    socket.on('error', reject);
  });
}

describe('mesh mTLS', () => {
  it('two workloads of the same mesh connect, each learning the other identity; ALPN prefers h2', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: 'cluster.local' });
    const server = await serve(await issue(ca, RATINGS));
    const client = await issue(ca, REVIEWS);
    try {
      assert.equal(await dial(server.port, meshClientOptions(meshSecureContext(client), [RATINGS])), 'hello h2');
      assert.deepEqual(server.peers, [REVIEWS]);
    } finally {
      await server.close();
    }
  });

  it('refuses a client without a certificate, one from another CA, and an expired one', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: 'cluster.local' });
    const { store: otherStore } = await openStore();
    const other = await CertificateAuthority.open(otherStore, { trustDomain: 'cluster.local' });
    const { store: pastStore } = await openStore();
    const twoDaysAgo = Date.now() - 48 * 3600_000;
    const past = await CertificateAuthority.open(pastStore, { trustDomain: 'cluster.local', now: () => twoDaysAgo });
    const server = await serve(await issue(ca, RATINGS));
    const rootsOnly = tls.createSecureContext({ ca: ca.trustBundle() });
    try {
      await assert.rejects(dial(server.port, meshClientOptions(rootsOnly, [RATINGS])), /certificate required|alert|closed without an answer|ECONNRESET/i);
      const foreign = await issue(other, REVIEWS);
      await assert.rejects(dial(server.port, meshClientOptions(tls.createSecureContext({ key: foreign.keyPem, cert: foreign.certChainPem, ca: ca.trustBundle() }), [RATINGS])), /unknown ca|alert|closed without an answer|ECONNRESET/i);
      const expired = await issue(past, REVIEWS);
      // Trust the past CA's root too, so the only fault left is the expiry.
      const expiredCtx = tls.createSecureContext({ key: expired.keyPem, cert: expired.certChainPem, ca: ca.trustBundle() });
      await assert.rejects(dial(server.port, meshClientOptions(expiredCtx, [RATINGS])), /expired|unknown ca|alert|closed without an answer|ECONNRESET/i);
      assert.deepEqual(server.peers, [], 'no refused client reached the application');
    } finally {
      await server.close();
    }
  });

  it('secure naming: a client refuses a server running as an identity the service may not have', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: 'cluster.local' });
    const server = await serve(await issue(ca, REVIEWS));
    try {
      const client = meshSecureContext(await issue(ca, RATINGS));
      await assert.rejects(dial(server.port, meshClientOptions(client, [RATINGS])), /the server is spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews, not one of spiffe:\/\/cluster.local\/ns\/default\/sa\/ratings/);
    } finally {
      await server.close();
    }
  });

  it('openssl s_client without a client certificate gets no application data', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: 'cluster.local' });
    const server = await serve(await issue(ca, RATINGS));
    try {
      // Async: the server under test runs in this process's event loop.
      const probe = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
        const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-brief', '-tls1_2'], { timeout: 10_000 }, (_err, stdout, stderr) => resolve({ stdout, stderr }));
        child.stdin?.end();
      });
      assert.ok(!`${probe.stdout}`.includes('hello'), 'the application never answered');
      assert.match(`${probe.stderr}`, /alert|certificate required|handshake failure/i, 'openssl reports the refusal');
      assert.deepEqual(server.peers, []);
    } finally {
      await server.close();
    }
  });

  it('recognises a TLS ClientHello by its first bytes', () => {
    assert.equal(looksLikeTls(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), true);
    assert.equal(looksLikeTls(Buffer.from('GET / HTTP/1.1\r\n')), false);
    assert.equal(looksLikeTls(Buffer.from('PRI * HTTP/2.0')), false);
  });
});
