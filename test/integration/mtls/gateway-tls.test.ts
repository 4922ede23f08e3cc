// Ingress gateway TLS termination with the operator's certificates, end to
// end: a real control plane compiles Gateway servers[].tls, a real gateway
// proxy subscribed over discovery terminates it. SIMPLE from files: HTTPS
// gets the page, plaintext on that port is refused. MUTUAL: a client
// certificate from the operator's CA is required (also probed with
// `openssl s_client`), one from another CA is refused. credentialName: the
// credential is stored through the admin API (owner-only on disk), pushed to
// the gateway that names it, and refused TLS until it exists.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import type { ListenerResource } from '../../../core/model/proxy-config.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { freePort, request, startUpstream } from '../../unit/proxy/proxy-test-helpers.ts';
import type { Upstream } from '../../unit/proxy/proxy-test-helpers.ts';
import { capturingLogger } from './mtls-fixtures.ts';
import { hasOpenssl, makeOperatorPki } from './operator-certs.ts';
import type { OperatorPki } from './operator-certs.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const HOST = 'bookinfo.example.com';
const OPENSSL = hasOpenssl();
const JIBE = fileURLToPath(new URL('../../../cli/jibe.ts', import.meta.url));
/** How a client sees a TLS connection cut during or right after its handshake. */
const REFUSED = /socket hang up|ECONNRESET|EPIPE|disconnected before secure TLS/;

function rules(pki: OperatorPki, appPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${appPort}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-files, protocol: HTTPS}
    hosts: [${HOST}]
    tls: {mode: SIMPLE, serverCertificate: ${pki.files.serverCert}, privateKey: ${pki.files.serverKey}}
  - port: {number: 8443, name: https-mutual, protocol: HTTPS}
    hosts: [${HOST}]
    tls: {mode: MUTUAL, serverCertificate: ${pki.files.serverCert}, privateKey: ${pki.files.serverKey}, caCertificates: ${pki.files.ca}}
  - port: {number: 9443, name: https-credential, protocol: HTTPS}
    hosts: [${HOST}]
    tls: {mode: SIMPLE, credentialName: bookinfo-cred}
  - port: {number: 9444, name: https-credential-mutual, protocol: HTTPS}
    hosts: [${HOST}]
    tls: {mode: MUTUAL, credentialName: bookinfo-mtls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [${HOST}]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {host: productpage.example.internal, port: {number: 9080}}
`;
}

interface HttpsOptions {
  cert?: string;
  key?: string;
}

function httpsGet(pki: OperatorPki, port: number, options: HttpsOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/productpage', servername: HOST, headers: { host: HOST }, ca: pki.pem.ca, agent: false, ...options },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

describe('gateway TLS termination with operator certificates', () => {
  let dir: string;
  let pki: OperatorPki;
  let cp: RunningControlPlane;
  let app: Upstream;
  let gateway: RunningProxy;
  let api: string;
  let admin: string;
  let lines: Array<Record<string, unknown>>;

  const port = (configPort: number) => gateway.listenerPorts()[`gateway|${configPort}`];
  const gatewayTls = (configPort: number) =>
    (gateway.state().resources.find((r) => r.type === 'listener' && r.name === `gateway|${configPort}`) as ListenerResource | undefined)?.tls;
  const call = async (method: string, path: string, body?: unknown, token: string | null = admin) => {
    const res = await fetch(api + path, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string; field?: string } } };
  };

  before(async () => {
    if (!OPENSSL) {
      if (process.env.CI === 'true') assert.fail('openssl is required in CI (it makes the operator PKI)');
      return;
    }
    pki = await makeOperatorPki(HOST);
    dir = await mkdtemp(join(tmpdir(), 'jibe-gateway-tls-'));
    app = await startUpstream('productpage');
    cp = await startTestControlPlane({
      dataDir: dir,
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
    admin = await readAdminToken(dir);
    const applied = await call('POST', '/api/v1/config/apply', { documents: parseDocuments(rules(pki, app.port), 'gateway.yaml') });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const captured = capturingLogger();
    lines = captured.lines;
    gateway = await startProxy({
      node: { id: 'gateway~ingressgateway.jibe-system', type: 'gateway', namespace: 'jibe-system', labels: { istio: 'ingressgateway' } },
      discoveryAddress: `127.0.0.1:${cp.ports.discovery}`,
      adminPort: 0,
      logger: captured.logger,
      drainTimeoutMs: 500,
      listenerOverrides: { address: '127.0.0.1', ports: { 443: await freePort(), 8443: await freePort(), 9443: await freePort(), 9444: await freePort() } },
    });
    await waitFor(() => [443, 8443, 9443, 9444].every((p) => port(p) !== undefined), 'the gateway listeners', 10_000, 50);
  });

  after(async () => {
    await gateway?.close();
    await cp?.close();
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('SIMPLE from files: HTTPS gets the page; plaintext on that port is refused', { skip: !OPENSSL }, async () => {
    const reply = await httpsGet(pki, port(443));
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, 'productpage GET /productpage');
    const before = gateway.stats.ssl_plaintext_refused;
    await assert.rejects(request(port(443), { path: '/productpage', headers: { host: HOST } }), /socket hang up|ECONNRESET/);
    assert.equal(gateway.stats.ssl_plaintext_refused, before + 1);
    assert.ok(lines.some((l) => l.reason === 'plaintext'), JSON.stringify(lines));
  });

  it('MUTUAL: a client certificate from the operator CA is required; another CA is refused and logged', { skip: !OPENSSL }, async () => {
    const ok = await httpsGet(pki, port(8443), { cert: pki.pem.clientCert, key: pki.pem.clientKey });
    assert.equal(ok.status, 200, ok.body);
    const noCert = gateway.stats.ssl_fail_verify_no_cert;
    await assert.rejects(httpsGet(pki, port(8443)), REFUSED);
    assert.equal(gateway.stats.ssl_fail_verify_no_cert, noCert + 1);
    await assert.rejects(httpsGet(pki, port(8443), { cert: pki.pem.strangerCert, key: pki.pem.strangerKey }), REFUSED);
    assert.ok(lines.some((l) => l.reason === 'unknown_ca' && String(l.detail).includes('Stranger Root')), JSON.stringify(lines));
  });

  it('MUTUAL: openssl s_client without a client certificate gets no page; with one it does', { skip: !OPENSSL }, async () => {
    const sClient = (extra: string[]) =>
      new Promise<string>((resolve) => {
        const child = execFile(
          'openssl',
          ['s_client', '-connect', `127.0.0.1:${port(8443)}`, '-servername', HOST, '-CAfile', pki.files.ca, '-alpn', 'http/1.1', '-quiet', ...extra],
          { timeout: 10_000 },
          (_err, stdout) => resolve(stdout),
        );
        child.stdin!.end(`GET /productpage HTTP/1.1\r\nhost: ${HOST}\r\nconnection: close\r\n\r\n`);
      });
    assert.doesNotMatch(await sClient([]), /HTTP\/1\.1 200/);
    assert.match(await sClient(['-cert', pki.files.clientCert, '-key', pki.files.clientKey]), /HTTP\/1\.1 200[\s\S]*productpage GET \/productpage/);
  });

  it('credentialName: refused until the credential exists; stored through the admin API (owner-only), pushed, served', { skip: !OPENSSL }, async () => {
    // No credential yet: the listener has no certificate, so TLS is refused rather than served in plaintext.
    assert.equal(gatewayTls(9443)?.certificatePem, undefined);
    await assert.rejects(httpsGet(pki, port(9443)), REFUSED);

    // The admin token is required, and a key that is not the certificate's is refused naming the field.
    const body = { cert: pki.pem.serverCert, key: pki.pem.serverKey };
    assert.equal((await call('PUT', '/api/v1/credentials/default/bookinfo-cred', body, null)).status, 401);
    const mismatched = await call('PUT', '/api/v1/credentials/default/bookinfo-cred', { cert: pki.pem.serverCert, key: pki.pem.clientKey });
    assert.equal(mismatched.status, 400);
    assert.equal(mismatched.body.error?.field, 'key');
    assert.match(mismatched.body.error!.message, /not the certificate's private key/);

    // In the Gateway's namespace (default): found after the gateway proxy's own (jibe-system).
    const put = await call('PUT', '/api/v1/credentials/default/bookinfo-cred', body);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual((put.body.credential as { subjectAltNames: string[] }).subjectAltNames, [`DNS:${HOST}`]);
    await waitFor(() => gatewayTls(9443)?.certificatePem !== undefined, 'the credential pushed to the gateway', 10_000, 50);
    const reply = await httpsGet(pki, port(9443));
    assert.equal(reply.status, 200, reply.body);

    // MUTUAL by credential: its ca verifies clients.
    const mutual = await call('PUT', '/api/v1/credentials/jibe-system/bookinfo-mtls', { ...body, ca: pki.pem.ca });
    assert.equal(mutual.status, 200, JSON.stringify(mutual.body));
    await waitFor(() => gatewayTls(9444)?.caCertificatesPem !== undefined, 'the mutual credential pushed', 10_000, 50);
    assert.equal((await httpsGet(pki, port(9444), { cert: pki.pem.clientCert, key: pki.pem.clientKey })).status, 200);
    await assert.rejects(httpsGet(pki, port(9444)), REFUSED);

    // Listing never shows a key; the stored files are owner-only.
    const listed = await call('GET', '/api/v1/credentials');
    assert.equal(listed.status, 200);
    assert.deepEqual((listed.body.credentials as Array<{ name: string }>).map((c) => c.name).sort(), ['bookinfo-cred', 'bookinfo-mtls']);
    assert.doesNotMatch(JSON.stringify(listed.body), /PRIVATE KEY/);
    const stateDir = join(dir, 'state');
    const files = (await readdir(stateDir)).filter((f) => f.startsWith('credentials'));
    assert.equal(files.length, 2, (await readdir(stateDir)).join(', '));
    for (const f of files) assert.equal((await stat(join(stateDir, f))).mode & 0o777, 0o600, f);

    // Deleted: the gateway loses the certificate and refuses TLS again.
    assert.equal((await call('DELETE', '/api/v1/credentials/default/bookinfo-cred')).status, 200);
    await waitFor(() => gatewayTls(9443)?.certificatePem === undefined, 'the credential withdrawn', 10_000, 50);
    await assert.rejects(httpsGet(pki, port(9443)), REFUSED);
    assert.equal((await call('DELETE', '/api/v1/credentials/default/bookinfo-cred')).status, 404);
  });

  it('jibe credential create / list / delete drive the same API from files', { skip: !OPENSSL }, async () => {
    const jibe = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [JIBE, 'credential', ...args, '--server', api, '--data-dir', dir], { timeout: 30_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const created = await jibe(['create', 'cli-cred', '-n', 'jibe-system', '--cert', pki.files.serverCert, '--key', pki.files.serverKey]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /credential jibe-system\/cli-cred stored: .*DNS:bookinfo\.example\.com/);
    const listed = await jibe(['list']);
    assert.match(listed.stdout, /jibe-system\s+cli-cred\s+DNS:bookinfo\.example\.com/);
    const wrong = await jibe(['create', 'cli-cred', '--cert', pki.files.serverCert, '--key', pki.files.clientKey]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /JIBE_ERR_BAD_REQUEST.*not the certificate's private key/);
    assert.equal((await jibe(['delete', 'cli-cred', '-n', 'jibe-system'])).code, 0);
  });

  it('only the gateway that names a credential gets its key', { skip: !OPENSSL }, async () => {
    await call('PUT', '/api/v1/credentials/jibe-system/bookinfo-mtls', { cert: pki.pem.serverCert, key: pki.pem.serverKey, ca: pki.pem.ca });
    const named = cp.mesh.build({ id: 'gateway~ingressgateway.jibe-system', type: 'gateway', namespace: 'jibe-system', labels: { istio: 'ingressgateway' } });
    assert.match(JSON.stringify(named), /PRIVATE KEY/);
    const other = cp.mesh.build({ id: 'gateway~egressgateway.jibe-system', type: 'gateway', namespace: 'jibe-system', labels: { istio: 'egressgateway' } });
    assert.doesNotMatch(JSON.stringify(other), /PRIVATE KEY/);
  });
});
