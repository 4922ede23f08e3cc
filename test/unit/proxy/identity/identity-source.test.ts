// The cert dir a VM's node agent keeps: read, checked (key fits chain, SPIFFE
// ID present), and re-read when the agent rewrites it.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { identityFromCertDir, readCertDir } from '../../../../proxy/identity/identity-source.ts';
import { PRODUCTPAGE, issue, openCa } from '../../../integration/mtls/mtls-fixtures.ts';
import { tempDir } from '../../ca/ca-fixtures.ts';

describe('cert dir identity', () => {
  it('reads the agent files, refuses a key that does not fit, and picks up a renewal', async () => {
    const { ca } = await openCa();
    const dir = await tempDir();
    const write = async (cert: { certChainPem: string; keyPem: string; trustBundle: string[] }) => {
      await writeFile(join(dir, 'cert-chain.pem'), cert.certChainPem);
      await writeFile(join(dir, 'key.pem'), cert.keyPem, { mode: 0o600 });
      await writeFile(join(dir, 'root-cert.pem'), cert.trustBundle.join('\n'));
    };
    const first = await issue(ca, PRODUCTPAGE);
    await write(first);
    assert.equal(readCertDir(dir).spiffeId, PRODUCTPAGE);
    assert.deepEqual(readCertDir(dir).trustBundle.map((p) => p.trim()), ca.trustBundle().map((p) => p.trim()));

    const running = identityFromCertDir(dir, pino({ level: 'silent' }), 50);
    try {
      const second = await issue(ca, PRODUCTPAGE);
      await write(second);
      for (let i = 0; i < 100 && running.identity.certificate.certChainPem !== second.certChainPem; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(running.identity.certificate.certChainPem, second.certChainPem);
    } finally {
      running.stop();
    }
    await writeFile(join(dir, 'key.pem'), (await issue(ca, PRODUCTPAGE)).keyPem);
    assert.throws(() => readCertDir(dir), /key\.pem is not the key of cert-chain\.pem/);
  });
});
