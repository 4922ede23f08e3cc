// The credentials and flags shared by `jibe up`'s Kubernetes and the integration
// tests' cluster: the API server's certificate must verify for 127.0.0.1 against
// the CA its clients trust, and every file a flag names must exist.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { localEtcdArgs, localKubeApiServerArgs, writeLocalClusterCredentials, writeLocalKubeconfig } from '../../../../platforms/kubernetes/kube-local-cluster.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-kube-local-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const files = writeLocalClusterCredentials(dir, 'unit ca');

test('the serving certificate is signed by the CA and valid for 127.0.0.1; the CA is a CA', () => {
  const ca = new X509Certificate(fs.readFileSync(files.ca));
  const serving = new X509Certificate(fs.readFileSync(files.cert));
  assert.equal(ca.ca, true);
  assert.equal(ca.subject, 'CN=unit ca');
  assert.equal(serving.ca, false);
  assert.equal(serving.verify(ca.publicKey), true);
  assert.equal(serving.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(serving.checkHost('kubernetes.default.svc'), 'kubernetes.default.svc');
  assert.equal(fs.readFileSync(files.ca, 'utf8'), files.caPem);
  // The private key matches the certificate the API server serves.
  assert.equal(serving.checkPrivateKey(createPrivateKey(fs.readFileSync(files.key))), true);
});

test('the admin token is in system:masters and secrets are owner-only', () => {
  assert.match(files.adminToken, /^[0-9a-f]{48}$/);
  assert.equal(fs.readFileSync(files.tokens, 'utf8'), `${files.adminToken},admin,admin-uid,"system:masters"\n`);
  for (const secret of [files.key, files.saKey, files.tokens]) assert.equal(fs.statSync(secret).mode & 0o077, 0, secret);
});

test('every file the API server flags name exists, and the ports land where they belong', () => {
  const args = localKubeApiServerArgs(files, 2379, 6443);
  const flag = (name: string) => args[args.indexOf(name) + 1];
  for (const name of ['--tls-cert-file', '--tls-private-key-file', '--client-ca-file', '--token-auth-file', '--service-account-key-file', '--service-account-signing-key-file']) {
    assert.ok(fs.existsSync(flag(name)!), name);
  }
  assert.equal(flag('--etcd-servers'), 'http://127.0.0.1:2379');
  assert.equal(flag('--secure-port'), '6443');
  assert.equal(flag('--authorization-mode'), 'RBAC');
  const etcd = localEtcdArgs('/data', 2379, 2380);
  assert.equal(etcd[etcd.indexOf('--listen-client-urls') + 1], 'http://127.0.0.1:2379');
  assert.equal(etcd[etcd.indexOf('--initial-cluster') + 1], 'default=http://127.0.0.1:2380');
});

test('the kubeconfig points its current context at the server, trusting the CA, as admin', () => {
  writeLocalKubeconfig(files, 'https://127.0.0.1:6443', 'here');
  const config = JSON.parse(fs.readFileSync(files.kubeconfig, 'utf8'));
  assert.equal(config['current-context'], 'here');
  assert.deepEqual(config.contexts, [{ name: 'here', context: { cluster: 'here', user: 'admin' } }]);
  assert.equal(config.clusters[0].cluster.server, 'https://127.0.0.1:6443');
  assert.equal(Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), files.caPem);
  assert.deepEqual(config.users, [{ name: 'admin', user: { token: files.adminToken } }]);
});
