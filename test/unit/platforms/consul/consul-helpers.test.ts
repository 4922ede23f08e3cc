// Pure pieces of the Consul platform: retry pacing, blocking-query index
// handling, KV key encoding, the ACL token → identity rule, secret sealing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityOf } from '../../../../platforms/consul/authenticator-consul-acl.ts';
import { backoffDelay, nextIndex } from '../../../../platforms/consul/consul-backoff.ts';
import { decodeKey, encodeKey, normalizePrefix } from '../../../../platforms/consul/consul-kv.ts';
import { SecretBox } from '../../../../platforms/consul/consul-secret-box.ts';
import { consulRegistryPlugin } from '../../../../platforms/consul/plugin.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../../core/mesh/mesh-snapshot.ts';

describe('Consul backoff', () => {
  const options = { baseMs: 100, maxMs: 5_000 };
  it('grows exponentially, stays within [step/2, step], and is capped', () => {
    assert.equal(backoffDelay(0, options, () => 0), 50);
    assert.equal(backoffDelay(0, options, () => 1), 100);
    assert.equal(backoffDelay(3, options, () => 0), 400);
    assert.equal(backoffDelay(3, options, () => 1), 800);
    assert.equal(backoffDelay(50, options, () => 1), 5_000);
    assert.equal(backoffDelay(50, options, () => 0), 2_500);
  });
  it('never returns zero, so a failing loop cannot spin', () => {
    for (let attempt = 0; attempt < 40; attempt++) assert.ok(backoffDelay(attempt, options, () => 0) >= 50);
  });
  it('index handling follows Consul: backwards or non-positive resets to a full read', () => {
    assert.deepEqual(nextIndex(10, 12), { index: 12, reset: false });
    assert.deepEqual(nextIndex(10, 10), { index: 10, reset: false });
    assert.deepEqual(nextIndex(10, 3), { index: 0, reset: true });
    assert.deepEqual(nextIndex(10, 0), { index: 0, reset: true });
    assert.deepEqual(nextIndex(10, undefined), { index: 0, reset: true });
  });
});

describe('Consul KV key encoding', () => {
  const keys = ['ca/root', 'Upper/Case', 'dots/../../escape', '//double//slash', 'ünïcödé/☃/🚀', 'percent/%2F/%', '.hidden', 'a.b'];
  it('round-trips and uses only characters Consul keeps in a URL path', () => {
    for (const key of keys) {
      const encoded = encodeKey(key);
      assert.match(encoded, /^[A-Za-z0-9_.-]*$/);
      assert.ok(!encoded.includes('..'), `${encoded} has no dot-dot segment`);
      assert.equal(decodeKey(encoded), key);
    }
  });
  it('keeps distinct keys distinct and prefixes as prefixes', () => {
    assert.equal(new Set(keys.map(encodeKey)).size, keys.length);
    assert.ok(encodeKey('vm/registrations/x').startsWith(encodeKey('vm/registration')));
    assert.ok(!encodeKey('a.b').startsWith(encodeKey('a/')));
  });
  it('normalizes the KV prefix and refuses path tricks', () => {
    assert.equal(normalizePrefix('/jibe/'), 'jibe/');
    assert.equal(normalizePrefix('teams/jibe'), 'teams/jibe/');
    assert.throws(() => normalizePrefix('a/../b'), /not a plain path/);
    assert.throws(() => normalizePrefix(''), /not a plain path/);
  });
});

describe('Consul ACL token → identity', () => {
  const options = { trustDomain: 'cluster.local', namespace: 'default', datacenter: 'dc1', now: () => Date.parse('2026-01-01T00:00:00Z') };
  it('one service identity proves that service', () => {
    assert.deepEqual(identityOf({ AccessorID: 'a', ServiceIdentities: [{ ServiceName: 'ratings' }] }, options), {
      spiffeId: 'spiffe://cluster.local/ns/default/sa/ratings',
      namespace: 'default',
      serviceAccount: 'ratings',
    });
  });
  it('no, several, foreign-datacenter or expired identities prove nothing', () => {
    assert.equal(identityOf({ AccessorID: 'a' }, options), undefined);
    assert.equal(identityOf({ AccessorID: 'a', ServiceIdentities: [{ ServiceName: 'a' }, { ServiceName: 'b' }] }, options), undefined);
    assert.equal(identityOf({ AccessorID: 'a', ServiceIdentities: [{ ServiceName: 'a', Datacenters: ['dc2'] }] }, options), undefined);
    assert.equal(identityOf({ AccessorID: 'a', ServiceIdentities: [{ ServiceName: 'a' }], ExpirationTime: '2025-12-31T00:00:00Z' }, options), undefined);
    assert.equal(identityOf({ AccessorID: 'a', ServiceIdentities: [{ ServiceName: 'bad_name' }] }, options), undefined);
  });
});

describe('Consul secret box', () => {
  const box = new SecretBox(Buffer.alloc(32, 7));
  it('seals and opens; the KV key is bound to the ciphertext', () => {
    const sealed = box.seal('{"pem":"secret"}', 'jibe/state/ca');
    assert.ok(!JSON.stringify(sealed).includes('secret'));
    assert.equal(box.open(sealed, 'jibe/state/ca'), '{"pem":"secret"}');
    assert.throws(() => box.open(sealed, 'jibe/state/other'), /does not open/);
    assert.throws(() => new SecretBox(Buffer.alloc(32, 8)).open(sealed, 'jibe/state/ca'), /does not open/);
  });
  it('refuses a key file too short to hold a key', () => {
    assert.throws(() => new SecretBox(Buffer.alloc(8)), /at least 32/);
  });
});

describe('Consul plugin options', () => {
  it('refuses a --consul-namespace that is not a DNS label before the registry starts', async () => {
    const context = { dataDir: '/nonexistent', settings: DEFAULT_MESH_SETTINGS, pluginOptions: { consul: { namespace: 'Not_A_Label' } } };
    await assert.rejects(consulRegistryPlugin.create(context), (err: Error & { code?: string; details?: { field?: string } }) => {
      assert.equal(err.code, 'JIBE_ERR_BAD_REQUEST');
      assert.equal(err.details?.field, 'consul.namespace');
      return true;
    });
  });
});
