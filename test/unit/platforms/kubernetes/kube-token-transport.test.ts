// A sidecar's service-account token is a bearer secret: `jibe proxy` sends it
// only over TLS verified against pinned roots, or in plaintext to loopback
// (`jibe up`). Refusals happen before the token is read or anything dialled.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { isJibeError } from '../../../../core/errors/errors.ts';
import { checkTokenApi, identityFromToken, isLoopbackHost, readRootsFile } from '../../../../proxy/identity/identity-source.ts';
import { runJibeSourceCombined as jibe } from '../../../helpers/jibe-cli.ts';

const ROOT = `-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----`;

describe('where a sidecar may send its token', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jibe-token-transport-'));
    await writeFile(join(dir, 'token'), 'not-a-real-token');
    await writeFile(join(dir, 'roots.pem'), `${ROOT}\n${ROOT.replace('MIIB', 'MIIC')}\n`);
    await writeFile(join(dir, 'empty.pem'), 'no certificate here\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loopback is 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost; nothing else', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]', '::1', '[::ffff:127.0.0.1]']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['10.0.0.1', 'jibe-control-plane.jibe-system.svc', '128.0.0.1', '[::2]', '127.0.0.1.nip.io', '0.0.0.0']) assert.equal(isLoopbackHost(host), false, host);
  });

  it('plaintext only to loopback; https only with roots', () => {
    assert.equal(checkTokenApi('http://127.0.0.1:15014', undefined).port, '15014');
    assert.equal(checkTokenApi('http://[::ffff:127.0.0.1]:15014', undefined).hostname, '[::ffff:7f00:1]');
    assert.equal(checkTokenApi('http://localhost:15014', undefined).protocol, 'http:');
    assert.equal(checkTokenApi('https://jibe-control-plane.jibe-system.svc:15015', '/roots.pem').protocol, 'https:');
    const refused = (apiBase: string, roots?: string) => {
      try {
        checkTokenApi(apiBase, roots);
      } catch (err) {
        assert.ok(isJibeError(err), String(err));
        assert.equal(err.code, 'JIBE_ERR_INSECURE_API');
        return err;
      }
      assert.fail(`${apiBase} was accepted`);
    };
    const plain = refused('http://jibe-control-plane.jibe-system.svc:15014');
    assert.match(plain.message, /refusing to send the workload's token in plaintext to jibe-control-plane\.jibe-system\.svc:15014/);
    assert.equal(plain.details.field, '--api');
    assert.match(plain.details.hint!, /--api https:\/\/jibe-control-plane\.jibe-system\.svc:15015 --ca-root-file/);
    assert.equal(refused('https://10.0.0.1:15015').details.field, '--ca-root-file');
    refused('ftp://10.0.0.1/');
    refused('not a url');
  });

  it('a roots file must hold PEM certificates; each one is kept', () => {
    assert.equal(readRootsFile(join(dir, 'roots.pem')).length, 2);
    assert.throws(() => readRootsFile(join(dir, 'empty.pem')), /holds no PEM certificate/);
    assert.throws(() => readRootsFile(join(dir, 'missing.pem')), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_FILE_READ' && /missing\.pem/.test(err.message));
  });

  it('identityFromToken refuses before dialling: a plaintext API off loopback, an unreadable roots file', async () => {
    const base = { tokenFile: join(dir, 'token'), credentialType: 'kubernetes-service-account-token', spiffeId: 'spiffe://cluster.local/ns/shop/sa/web', logger: pino({ level: 'silent' }) };
    await assert.rejects(identityFromToken({ ...base, apiBase: 'http://192.0.2.1:15014' }), /JIBE_ERR_INSECURE_API|plaintext/);
    await assert.rejects(
      identityFromToken({ ...base, apiBase: 'https://192.0.2.1:15015', tls: { caRootFile: join(dir, 'empty.pem'), serverSpiffeId: 'spiffe://cluster.local/ns/jibe-system/sa/jibe-control-plane' } }),
      /holds no PEM certificate/,
    );
  });

  it('jibe proxy --kube-token-file with an http:// API off loopback exits with the error, naming the flag to use', async () => {
    const { code, out } = await jibe(['proxy', '--workload', 'web', '--namespace', 'shop', '--kube-token-file', join(dir, 'token'), '--api', 'http://192.0.2.1:15014', '--discovery', '127.0.0.1:1', '--metrics-port', 'off']);
    assert.equal(code, 1, out);
    assert.match(out, /JIBE_ERR_INSECURE_API/);
    assert.match(out, /refusing to send the workload's token in plaintext to 192\.0\.2\.1:15014/);
    assert.match(out, /--ca-root-file/);
  });

  it('jibe proxy --ca-root-file without a token is a usage error', async () => {
    const { code, out } = await jibe(['proxy', '--workload', 'web', '--ca-root-file', join(dir, 'roots.pem'), '--discovery', '127.0.0.1:1', '--metrics-port', 'off']);
    assert.equal(code, 1, out);
    assert.match(out, /--ca-root-file verifies the API a token is sent to/);
  });
});
