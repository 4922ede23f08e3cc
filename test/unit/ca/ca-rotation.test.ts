import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, it } from 'node:test';
import { CA_ROOTS_KEY, CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { issuedBy, openStore, RATINGS, REVIEWS, TRUST_DOMAIN } from './ca-fixtures.ts';

const HOUR = 3600_000;

interface Identity {
  key: string;
  cert: string;
}

async function issue(ca: CertificateAuthority, spiffeId: string): Promise<Identity> {
  const { keyPem, csrPem } = await generateKeyAndCsr(spiffeId);
  return { key: keyPem, cert: (await ca.sign(csrPem, { spiffeId })).certChainPem };
}

/**
 * One mutual-TLS handshake over loopback, each side trusting only its `ca`
 * bundle. The server checks the client certificate itself (as a proxy does, to
 * log why it refused) and answers `ok` or `refused: <reason>`.
 */
async function handshake(server: Identity & { ca: string[] }, client: Identity & { ca: string[] }): Promise<{ ok: true; serverSaw: string; clientSaw: string } | { ok: false; error: string }> {
  let serverSaw = '';
  const tlsServer = createServer({ key: server.key, cert: server.cert, ca: server.ca, requestCert: true, rejectUnauthorized: false }, (socket) => {
    serverSaw = socket.getPeerCertificate().subjectaltname ?? '';
    socket.end(socket.authorized ? 'ok' : `refused: ${String(socket.authorizationError)}`);
  });
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  const { port } = tlsServer.address() as AddressInfo;
  const socket = connect({ host: '127.0.0.1', port, key: client.key, cert: client.cert, ca: client.ca, checkServerIdentity: () => undefined });
  try {
    await Promise.race([once(socket, 'secureConnect'), once(socket, 'error').then(([err]) => Promise.reject(err))]);
    const clientSaw = socket.getPeerCertificate().subjectaltname ?? '';
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    await Promise.race([once(socket, 'end'), once(socket, 'error').then(([err]) => Promise.reject(err))]);
    return answer === 'ok' ? { ok: true, serverSaw, clientSaw } : { ok: false, error: `server ${answer}` };
  } catch (err) {
    return { ok: false, error: `client: ${(err as Error).message}` };
  } finally {
    socket.destroy();
    tlsServer.close();
    await once(tlsServer, 'close');
  }
}

describe('CertificateAuthority root rotation', () => {
  it('trusts both roots during the overlap, signs with the new one, and drops the old one when the overlap ends', async () => {
    const { store, dataDir } = await openStore();
    let now = Date.now();
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN, now: () => now });
    const [oldRoot] = ca.trustBundle();
    const oldLeaf = await issue(ca, REVIEWS);
    let changes = 0;
    ca.onChange(() => changes++);

    await ca.rotateRoot({ overlapMs: 48 * HOUR });
    assert.equal(changes, 1);
    const bundle = ca.trustBundle();
    assert.equal(bundle.length, 2);
    const [newRoot] = bundle;
    assert.notEqual(newRoot, oldRoot);
    assert.equal(bundle[1], oldRoot);
    assert.equal(+ca.nextTrustChangeAt()!, now + 48 * HOUR);

    const newLeaf = await issue(ca, RATINGS);
    const leaf = new X509Certificate(newLeaf.cert);
    assert.ok(issuedBy(leaf, newRoot), 'new leaves come from the new root');
    assert.ok(!issuedBy(leaf, oldRoot));
    assert.ok(issuedBy(new X509Certificate(oldLeaf.cert), oldRoot), 'old leaves still verify against the bundle');

    // A peer still holding an old-root certificate and one with a new-root
    // certificate accept each other, both ways, when they trust the bundle.
    const overlap = await handshake({ ...newLeaf, ca: bundle }, { ...oldLeaf, ca: bundle });
    assert.deepEqual(overlap, { ok: true, serverSaw: `URI:${REVIEWS}`, clientSaw: `URI:${RATINGS}` });

    // A restart during the overlap keeps both roots.
    await store.close();
    const { store: reopened } = await openStore(dataDir);
    const again = await CertificateAuthority.open(reopened, { trustDomain: TRUST_DOMAIN, now: () => now });
    assert.deepEqual(again.trustBundle(), bundle);

    now += 48 * HOUR + 1;
    assert.deepEqual(again.trustBundle(), [newRoot]);
    assert.equal(again.nextTrustChangeAt(), undefined);
    const after = await handshake({ ...newLeaf, ca: again.trustBundle() }, { ...oldLeaf, ca: again.trustBundle() });
    assert.equal(after.ok, false, 'a certificate from the dropped root is refused');
    assert.match((after as { error: string }).error, /^server refused: UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT_LOCALLY)$/);

    // The next rotation prunes the expired entry instead of carrying it forever.
    await again.rotateRoot({ overlapMs: HOUR });
    const stored = await reopened.get<{ roots: { certPem: string }[] }>(CA_ROOTS_KEY);
    assert.deepEqual(stored?.value.roots.map((r) => r.certPem), [newRoot]);
  });

  it('drops the old root at once with an overlap of 0 (a compromised key)', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    const [oldRoot] = ca.trustBundle();
    await ca.rotateRoot({ overlapMs: 0 });
    assert.equal(ca.trustBundle().length, 1);
    assert.notEqual(ca.trustBundle()[0], oldRoot);
  });

  it('lets only one of two control planes rotate the same root; the other adopts the winner', async () => {
    const { store } = await openStore();
    const a = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    const b = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    await a.rotateRoot({ overlapMs: HOUR });
    let caught: unknown;
    await b.rotateRoot({ overlapMs: HOUR }).catch((err: unknown) => (caught = err));
    assert.ok(isJibeError(caught) && caught.code === 'JIBE_ERR_CONFLICT', String(caught));
    assert.deepEqual(b.trustBundle(), a.trustBundle());
    const leaf = new X509Certificate((await issue(b, REVIEWS)).cert);
    assert.ok(issuedBy(leaf, a.trustBundle()[0]));
  });

  it('refresh picks up a rotation made by another control plane sharing the store', async () => {
    const { store } = await openStore();
    const a = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    const b = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    let changed = 0;
    b.onChange(() => changed++);
    await a.rotateRoot({ overlapMs: HOUR });
    await b.refresh();
    assert.equal(changed, 1);
    assert.deepEqual(b.trustBundle(), a.trustBundle());
    await b.refresh();
    assert.equal(changed, 1, 'no change, no notification');
  });

  it('refuses a negative or fractional overlap', async () => {
    const { store } = await openStore();
    const ca = await CertificateAuthority.open(store, { trustDomain: TRUST_DOMAIN });
    for (const overlapMs of [-1, 1.5, Number.NaN]) {
      await assert.rejects(ca.rotateRoot({ overlapMs }), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_BAD_REQUEST');
    }
  });
});
