// The control plane's certificate endpoints, against a real control plane
// (file stores in a temp dir, API on an ephemeral port) and the proxy's
// IdentityManager as the client.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { IdentityManager } from '../../../proxy/identity/identity-manager.ts';
import { generateKeyAndCsr } from '../../../proxy/identity/workload-key.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const TD = 'cluster.local';
const REVIEWS = `spiffe://${TD}/ns/default/sa/reviews`;

describe('control plane certificate API', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let api: string;
  let admin: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jibe-cert-api-'));
    cp = await startTestControlPlane({
      dataDir: dir,
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
    admin = await readAdminToken(dir);
  });
  after(async () => {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(api + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
  };
  const mint = async (serviceAccount: string) => {
    const r = await post('/api/v1/bootstrap-tokens', { namespace: 'default', serviceAccount }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.token as string;
  };

  it('keeps the admin token owner-only', async () => {
    assert.equal((await stat(join(dir, 'admin-token'))).mode & 0o777, 0o600);
  });

  it('refuses to mint bootstrap tokens without the admin token', async () => {
    const none = await post('/api/v1/bootstrap-tokens', { namespace: 'default', serviceAccount: 'reviews' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error?.code, 'JIBE_ERR_UNAUTHENTICATED');
    const wrong = await post('/api/v1/bootstrap-tokens', { namespace: 'default', serviceAccount: 'reviews' }, admin.slice(1) + 'x');
    assert.equal(wrong.status, 401);
  });

  it('issues a certificate for the proven identity, verifiable with the trust bundle', async () => {
    const token = await mint('reviews');
    const identity = new IdentityManager({ apiBase: api, spiffeId: REVIEWS, credential: async () => ({ type: 'bootstrap-token', token }) });
    const cert = await identity.start();
    identity.stop();
    const leaf = new X509Certificate(cert.certChainPem);
    assert.equal(leaf.subjectAltName, `URI:${REVIEWS}`);
    const bundle = (await (await fetch(api + '/api/v1/trust-bundle')).json()) as { roots: string[] };
    assert.deepEqual(bundle.roots, cert.trustBundle);
    assert.ok(leaf.verify(new X509Certificate(bundle.roots[0]).publicKey), 'signed by the mesh root');
    const lifetime = cert.expiresAt.getTime() - Date.parse(leaf.validFrom);
    assert.ok(lifetime > 23 * 3600_000 && lifetime <= 24 * 3600_000 + 600_000, `24 h lifetime, got ${lifetime} ms`);
  });

  it('refuses a CSR for an identity other than the proven one, and unknown credentials', async () => {
    const token = await mint('ratings');
    const { csrPem } = await generateKeyAndCsr(REVIEWS);
    const foreign = await post('/api/v1/certificates', { credential: { type: 'bootstrap-token', token }, csr: csrPem });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error?.code, 'JIBE_ERR_CSR_REJECTED');
    const unknown = await post('/api/v1/certificates', { credential: { type: 'bootstrap-token', token: 'A'.repeat(43) }, csr: csrPem });
    assert.equal(unknown.status, 401);
    const identity = new IdentityManager({ apiBase: api, spiffeId: REVIEWS, credential: async () => ({ type: 'bootstrap-token', token }) });
    await assert.rejects(identity.start(), /refused a certificate for spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews/);
  });

  it('renews on demand with a fresh key and tells the listener', async () => {
    const token = await mint('reviews');
    const rotated: string[] = [];
    const identity = new IdentityManager({
      apiBase: api,
      spiffeId: REVIEWS,
      credential: async () => ({ type: 'bootstrap-token', token }),
      onRotate: (c) => rotated.push(c.keyPem),
    });
    const first = await identity.start();
    const second = await identity.rotate();
    identity.stop();
    assert.notEqual(first.keyPem, second.keyPem, 'a new key per certificate');
    assert.deepEqual(rotated, [second.keyPem]);
    assert.equal(identity.current, second);
  });
});
