// The policy layer configured like Istio, end to end: a MeshConfig with
// extension providers (an ext authz HTTP service, a deny expression) and
// CUSTOM AuthorizationPolicies are applied to a real control plane, which
// compiles them into the gateway proxy's config over discovery; the gateway
// asks a real HTTP authorization service (Istio's ext-authz sample
// semantics: allowed with `x-ext-authz: allow`). A service that does not
// answer in time fails closed with statusOnError, or open with failOpen; a
// provider naming no MeshConfig entry is refused at apply; a provider the
// proxy cannot build is NACKed while the running one keeps serving.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { readAdminToken } from '../../../core/api/admin-token.ts';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import type { MeshResource } from '../../../core/model/proxy-config.ts';
import { policyAdapterPlugins } from '../../../core/plugins/plugin-tokens.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import type { PolicyAdapter } from '../../../proxy/security/policy-adapter.ts';
import type { PolicyAdapterPlugin } from '../../../core/model/policy-adapter.ts';
import { freePort, request, startUpstream } from '../../unit/proxy/proxy-test-helpers.ts';
import type { Upstream } from '../../unit/proxy/proxy-test-helpers.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const HOST = 'shop.example.com';

interface AuthzServer {
  port: number;
  checks: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/** Istio's ext-authz sample over HTTP: `x-ext-authz: allow` is allowed (with a result header), anything else 403. */
async function startExtAuthz(): Promise<AuthzServer> {
  const checks: AuthzServer['checks'] = [];
  const server = http.createServer((req, res) => {
    checks.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.headers['x-ext-authz'] === 'allow') {
      res.writeHead(200, { 'x-ext-authz-check-result': 'allowed', 'x-not-forwarded': 'x' });
      res.end();
      return;
    }
    res.writeHead(403, { 'x-ext-authz-check-result': 'denied', 'x-not-forwarded': 'x' });
    res.end('denied by ext_authz for not found header `x-ext-authz: allow` in the request');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    checks,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** An authorization service that accepts checks and never answers (until closed). */
async function startSilentAuthz(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(() => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function meshConfig(authzPort: number, silentPort: number, noBots = 'request.headers[user-agent] contains "bot"'): string {
  return `apiVersion: jibe.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: jibe-system}
spec:
  extensionProviders:
  - name: sample-ext-authz
    envoyExtAuthzHttp:
      service: jibe-system/127.0.0.1
      port: ${authzPort}
      pathPrefix: /check
      timeout: 5s
      includeRequestHeadersInCheck: [x-ext-authz]
      headersToUpstreamOnAllow: [x-ext-authz-check-result]
      headersToDownstreamOnDeny: [x-ext-authz-check-result]
  - name: silent-closed
    envoyExtAuthzHttp: {service: 127.0.0.1, port: ${silentPort}, timeout: 200ms, statusOnError: "503"}
  - name: silent-open
    envoyExtAuthzHttp: {service: 127.0.0.1, port: ${silentPort}, timeout: 200ms, failOpen: true}
  - name: no-bots
    denyExpression: {expression: '${noBots}'}
  - name: unused-list
    list: {attribute: source.ip, values: [10.0.0.0/8], mode: deny}
`;
}

function custom(name: string, provider: string, paths: string[]): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: jibe-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: ${provider}}
  rules:
  - to:
    - operation: {paths: ${JSON.stringify(paths)}}
`;
}

function routing(appPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${appPort}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [${HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [${HOST}]
  gateways: [shop-gateway]
  http:
  - route:
    - destination: {host: shop.example.internal, port: {number: 9080}}
`;
}

describe('extension providers from MeshConfig through the control plane', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let app: Upstream;
  let authz: AuthzServer;
  let silent: { port: number; close(): Promise<void> };
  let gateway: RunningProxy;
  let api: string;
  let admin: string;
  let gatewayPort: number;

  const apply = async (yaml: string) => {
    const res = await fetch(`${api}/api/v1/config/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ documents: parseDocuments(yaml, 'policy.yaml') }),
    });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string; causes?: Array<{ code: string; message: string; field?: string; resource?: string }> } } };
  };
  const get = (path: string, headers: Record<string, string> = {}) => request(gatewayPort, { path, headers: { host: HOST, ...headers } });
  const mesh = () => gateway.state().resources.find((r): r is MeshResource => r.type === 'mesh');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jibe-policy-providers-'));
    app = await startUpstream('shop');
    authz = await startExtAuthz();
    silent = await startSilentAuthz();
    cp = await startTestControlPlane({
      dataDir: dir,
    });
    api = `http://127.0.0.1:${cp.ports.api}`;
    admin = await readAdminToken(dir);
    const yaml = [
      routing(app.port),
      meshConfig(authz.port, silent.port),
      custom('ext', 'sample-ext-authz', ['/api/*']),
      custom('closed', 'silent-closed', ['/closed']),
      custom('open', 'silent-open', ['/open']),
      custom('bots', 'no-bots', ['/public/*']),
    ].join('---\n');
    const applied = await apply(yaml);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    gatewayPort = await freePort();
    gateway = await startProxy({
      node: { id: 'gateway~ingressgateway.jibe-system', type: 'gateway', namespace: 'jibe-system', labels: { istio: 'ingressgateway' } },
      discoveryAddress: `127.0.0.1:${cp.ports.discovery}`,
      adminPort: 0,
      logger: pino({ level: 'silent' }),
      drainTimeoutMs: 500,
      listenerOverrides: { address: '127.0.0.1', ports: { 8080: gatewayPort } },
      policyAdapterPlugins: policyAdapterPlugins(registerPlugins()) as Array<PolicyAdapterPlugin<PolicyAdapter>>,
    });
    await waitFor(() => gateway.listenerPorts()['gateway|8080'] !== undefined && mesh()?.extensionProviders !== undefined, 'the gateway listener', 10_000, 50);
  });

  after(async () => {
    await gateway?.close();
    await cp?.close();
    await silent?.close();
    await authz?.close();
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends the proxy only the providers its CUSTOM policies name, compiled', () => {
    const providers = mesh()!.extensionProviders!;
    assert.deepEqual(
      providers.map((p) => p.name),
      ['no-bots', 'sample-ext-authz', 'silent-closed', 'silent-open'],
    );
    const ext = providers.find((p) => p.name === 'sample-ext-authz');
    assert.deepEqual(ext, {
      name: 'sample-ext-authz',
      kind: 'ext-authz-http',
      url: `http://127.0.0.1:${authz.port}/check`,
      timeoutMs: 5000,
      failOpen: false,
      statusOnError: 403,
      includeRequestHeaders: ['x-ext-authz'],
      headersToUpstream: ['x-ext-authz-check-result'],
      headersToDownstream: ['x-ext-authz-check-result'],
    });
  });

  it('the ext authz service allows and denies; its headers go upstream on allow and downstream on deny', async () => {
    const ok = await get('/api/items?x=1', { 'x-ext-authz': 'allow' });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, 'shop GET /api/items?x=1');
    assert.equal(app.requests.at(-1)!.headers['x-ext-authz-check-result'], 'allowed');
    const check = authz.checks.at(-1)!;
    assert.equal(check.url, '/check/api/items?x=1', 'path prefixed, query kept');
    assert.equal(check.headers['x-ext-authz'], 'allow');

    const seen = app.requests.length;
    const denied = await get('/api/items', { 'x-ext-authz': 'deny' });
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'denied by ext_authz for not found header `x-ext-authz: allow` in the request');
    assert.equal(denied.headers['x-ext-authz-check-result'], 'denied');
    assert.equal(denied.headers['x-not-forwarded'], undefined, 'only headersToDownstreamOnDeny reach the client');
    assert.equal(app.requests.length, seen, 'a denied request never reaches the app');

    // Requests the CUSTOM rules do not match are not checked.
    const checks = authz.checks.length;
    assert.equal((await get('/home')).status, 200);
    assert.equal(authz.checks.length, checks);
  });

  it('a service that does not answer in time fails closed with statusOnError, or open with failOpen', async () => {
    const closed = await get('/closed');
    assert.deepEqual([closed.status, closed.body], [503, 'RBAC: access denied']);
    const open = await get('/open');
    assert.deepEqual([open.status, open.body], [200, 'shop GET /open']);
  });

  it('a deny-expression provider decides the requests its CUSTOM policy matches', async () => {
    const bot = await get('/public/page', { 'user-agent': 'crawlbot/2' });
    assert.deepEqual([bot.status, bot.body], [403, 'RBAC: access denied']);
    assert.equal((await get('/public/page', { 'user-agent': 'curl/8' })).status, 200);
  });

  it('a CUSTOM policy naming a provider the MeshConfig lacks is refused at apply, naming the field', async () => {
    const refused = await apply(custom('typo', 'sample-ext-auth', ['/x']));
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    const cause = refused.body.error!.causes!.find((c) => c.field === 'spec.provider.name');
    assert.ok(cause, JSON.stringify(refused.body));
    assert.equal(cause.code, 'JIBE_ERR_REFERENCE');
    assert.match(cause.message, /"sample-ext-auth" is not defined in MeshConfig spec\.extensionProviders.*did you mean "sample-ext-authz"/);

    // Removing a provider a policy still uses is refused too.
    const withoutProviders = await apply('apiVersion: jibe.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: jibe-system}\nspec: {}\n');
    assert.equal(withoutProviders.status, 400, JSON.stringify(withoutProviders.body));
  });

  it('a provider the proxy cannot build is NACKed; the running adapters keep serving', async () => {
    const rejected = gateway.stats.config_update_rejected;
    // Valid YAML the control plane cannot judge (the expression language lives in the proxy): the proxy refuses it.
    const applied = await apply(meshConfig(authz.port, silent.port, 'request.headers[user-agent] contains'));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await waitFor(() => gateway.stats.config_update_rejected > rejected, 'the update rejected', 10_000, 50);
    assert.equal((await get('/public/page', { 'user-agent': 'crawlbot/2' })).status, 403, 'the previous deny expression still decides');

    // A fixed expression is accepted and takes over.
    assert.equal((await apply(meshConfig(authz.port, silent.port, 'request.headers[user-agent] contains "curl"'))).status, 200);
    await waitFor(async () => (await get('/public/page', { 'user-agent': 'curl/8' })).status === 403, 'the new expression', 10_000, 50);
    assert.equal((await get('/public/page', { 'user-agent': 'crawlbot/2' })).status, 200);
  });
});
