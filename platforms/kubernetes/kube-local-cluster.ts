// The parts of a throwaway Kubernetes control plane (etcd + kube-apiserver,
// no kubelet) that `jibe up` and the integration tests' cluster share: the
// credentials, each binary's flags and the kubeconfig. How the processes are
// started and watched stays with the caller (the process supervisor for
// `jibe up`, plain child processes in tests).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import forge from 'node-forge';

export interface LocalClusterFiles {
  /** Path of the CA certificate (the API server's --client-ca-file). */
  ca: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caPem: string;
  cert: string;
  key: string;
  saPub: string;
  saKey: string;
  tokens: string;
  /** Where writeLocalKubeconfig puts the kubeconfig. */
  kubeconfig: string;
  /** Static token of `admin` in system:masters. */
  adminToken: string;
}

function rsaKey(): { key: forge.pki.rsa.PrivateKey; publicKey: forge.pki.PublicKey; pem: string } {
  // Node's native generator: forge's pure-JS one takes seconds per 2048-bit key.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  const key = forge.pki.privateKeyFromPem(pem);
  return { key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), pem };
}

function oneWeekCertificate(serial: string, subject: string, publicKey: forge.pki.PublicKey, issuer: forge.pki.CertificateField[] | undefined, extensions: object[], signer: forge.pki.rsa.PrivateKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: subject }]);
  cert.setIssuer(issuer ?? [{ name: 'commonName', value: subject }]);
  cert.setExtensions(extensions);
  cert.sign(signer, forge.md.sha256.create());
  return cert;
}

/** Writes into `dir` a one-week CA, the API server's serving certificate for 127.0.0.1, service-account keys and the admin token file. */
export function writeLocalClusterCredentials(dir: string, caName: string): LocalClusterFiles {
  const caKey = rsaKey();
  const ca = oneWeekCertificate('01', caName, caKey.publicKey, undefined, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ], caKey.key);
  const servingKey = rsaKey();
  const serving = oneWeekCertificate('02', 'kube-apiserver', servingKey.publicKey, ca.subject.attributes, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }, { type: 2, value: 'kubernetes.default.svc' }] },
  ], caKey.key);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const files: LocalClusterFiles = {
    ca: path.join(dir, 'ca.crt'),
    caPem: forge.pki.certificateToPem(ca),
    cert: path.join(dir, 'apiserver.crt'),
    key: path.join(dir, 'apiserver.key'),
    saPub: path.join(dir, 'sa.pub'),
    saKey: path.join(dir, 'sa.key'),
    tokens: path.join(dir, 'tokens.csv'),
    kubeconfig: path.join(dir, 'kubeconfig'),
    adminToken: randomBytes(24).toString('hex'),
  };
  fs.writeFileSync(files.ca, files.caPem);
  fs.writeFileSync(files.cert, forge.pki.certificateToPem(serving));
  fs.writeFileSync(files.key, servingKey.pem, { mode: 0o600 });
  fs.writeFileSync(files.saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(files.saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(files.tokens, `${files.adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  return files;
}

/** A single-member etcd on loopback. */
export function localEtcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  return [
    '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
    '--log-level', 'warn',
  ];
}

/** kube-apiserver on 127.0.0.1:`apiPort` with RBAC, token auth and service-account tokens. */
export function localKubeApiServerArgs(files: LocalClusterFiles, etcdPort: number, apiPort: number): string[] {
  return [
    '--etcd-servers', `http://127.0.0.1:${etcdPort}`,
    '--bind-address', '127.0.0.1',
    '--advertise-address', '127.0.0.1',
    '--secure-port', String(apiPort),
    '--tls-cert-file', files.cert,
    '--tls-private-key-file', files.key,
    '--client-ca-file', files.ca,
    '--token-auth-file', files.tokens,
    '--authorization-mode', 'RBAC',
    '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
    '--service-account-key-file', files.saPub,
    '--service-account-signing-key-file', files.saKey,
    '--service-cluster-ip-range', '10.96.0.0/16',
    '--enable-priority-and-fairness=false',
    '--v', '1',
  ];
}

/** Writes files.kubeconfig: one cluster, the admin user, one context named `name`, current. */
export function writeLocalKubeconfig(files: LocalClusterFiles, server: string, name: string): void {
  fs.writeFileSync(
    files.kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(files.caPem).toString('base64') } }],
      users: [{ name: 'admin', user: { token: files.adminToken } }],
      contexts: [{ name, context: { cluster: name, user: 'admin' } }],
      'current-context': name,
    }),
    { mode: 0o600 },
  );
}
