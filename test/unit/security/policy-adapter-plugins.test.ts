// Policy adapters as plugins configured by the mesh: the POLICY_ADAPTER kinds
// of cli/plugins.ts, the proxy's provider registry (typed errors for unknown
// kinds and duplicate names, a NACK for a config a plugin refuses, adapters
// kept across updates that do not change them), MeshConfig extensionProviders
// checks, and a quota provider enforced by a running proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import { container } from 'tsyringe';
import { registerPlugins } from '../../../cli/plugins.ts';
import { parseDocuments } from '../../../core/config/load-documents.ts';
import { validateApply } from '../../../core/config/validate-apply.ts';
import { validateResource } from '../../../core/config/validate-resource.ts';
import { JibeError } from '../../../core/errors/errors.ts';
import type { PolicyAdapterPlugin, PolicyProviderConfig } from '../../../core/model/policy-adapter.ts';
import type { ListenerResource, MeshResource } from '../../../core/model/proxy-config.ts';
import { POLICY_ADAPTER, policyAdapterPlugins } from '../../../core/plugins/plugin-tokens.ts';
import { compileExtensionProvider, extAuthzUrl } from '../../../core/mesh/build-extension-providers.ts';
import { PolicyAdapterRegistry } from '../../../proxy/security/policy-adapter.ts';
import type { PolicyAdapter } from '../../../proxy/security/policy-adapter.ts';
import { createDenyExpressionAdapter } from '../../../proxy/security/policy-adapter-expression.ts';
import { ProviderAdapters } from '../../../proxy/security/policy-adapter-providers.ts';
import { cluster, endpoints, freePort, fullUpdate, listener, request, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../proxy/proxy-test-helpers.ts';

const plugins = () => policyAdapterPlugins(registerPlugins()) as Array<PolicyAdapterPlugin<PolicyAdapter>>;
const isCode = (code: string, message?: RegExp) => (e: unknown) => e instanceof JibeError && e.code === code && (message === undefined || message.test(e.message));

const QUOTA: PolicyProviderConfig = { name: 'per-ip', kind: 'quota', maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 3_600_000, key: 'source.ip' };
const BOTS: PolicyProviderConfig = { name: 'no-bots', kind: 'deny-expression', expression: 'request.headers[user-agent] contains "bot"' };

test('cli/plugins.ts registers the four built-in adapter kinds; a kind registered twice is a typed error', () => {
  assert.deepEqual(plugins().map((p) => p.name).sort(), ['deny-expression', 'ext-authz-http', 'list', 'quota']);
  const c = container.createChildContainer();
  const fake: PolicyAdapterPlugin = { name: 'quota', create: async () => ({}) };
  c.register(POLICY_ADAPTER, { useValue: fake });
  c.register(POLICY_ADAPTER, { useValue: fake });
  assert.throws(() => policyAdapterPlugins(c), isCode('JIBE_ERR_PLUGIN_DUPLICATE', /"quota"/));
  assert.throws(() => new ProviderAdapters(undefined, [fake, fake] as Array<PolicyAdapterPlugin<PolicyAdapter>>), isCode('JIBE_ERR_PLUGIN_DUPLICATE'));
});

test('the adapter registry: unknown and duplicate names are typed errors', () => {
  const registry = new PolicyAdapterRegistry([createDenyExpressionAdapter('a', 'source.ip == "1.2.3.4"')]);
  assert.throws(() => registry.get('b'), isCode('JIBE_ERR_PLUGIN_UNKNOWN', /"b"/));
  assert.throws(() => registry.register(createDenyExpressionAdapter('a', 'source.ip == "1.2.3.4"')), isCode('JIBE_ERR_PLUGIN_DUPLICATE', /"a"/));
});

test('provider adapters: built by kind, kept while unchanged, replaced and closed when changed', async () => {
  const adapters = new ProviderAdapters(undefined, plugins());
  assert.equal(adapters.changed(undefined), false);
  assert.equal(adapters.changed([QUOTA]), true);
  const first = await adapters.prepare([QUOTA, BOTS]);
  first.commit();
  assert.deepEqual(adapters.current.names().sort(), ['no-bots', 'per-ip']);
  const quota = adapters.current.get('per-ip');
  assert.equal(adapters.changed([QUOTA, BOTS]), false);
  // Same config, another push: the same adapter (and its buckets) stays.
  const again = await adapters.prepare([{ ...QUOTA }, BOTS]);
  assert.equal(again.registry.get('per-ip'), quota);
  // A changed config builds a new one; committing closes the old.
  let closed = 0;
  quota.close = () => void closed++;
  const changed = await adapters.prepare([{ ...QUOTA, maxTokens: 5 }]);
  assert.notEqual(changed.registry.get('per-ip'), quota);
  assert.equal(closed, 0, 'nothing is released before the update is accepted');
  changed.commit();
  assert.equal(closed, 1);
  assert.deepEqual(adapters.current.names(), ['per-ip']);
  adapters.close();
});

test('provider adapters: unknown kinds, taken names and configs a plugin refuses are typed errors', async () => {
  const fixed = new PolicyAdapterRegistry([createDenyExpressionAdapter('in-code', 'source.ip == "1.2.3.4"')]);
  const adapters = new ProviderAdapters(fixed, plugins());
  await assert.rejects(adapters.prepare([{ ...BOTS, kind: 'opa' } as unknown as PolicyProviderConfig]), isCode('JIBE_ERR_PLUGIN_UNKNOWN', /kind "opa".*no policy adapter plugin/));
  await assert.rejects(adapters.prepare([{ ...BOTS, name: 'in-code' }]), isCode('JIBE_ERR_PLUGIN_DUPLICATE', /"in-code"/));
  await assert.rejects(adapters.prepare([BOTS, BOTS]), isCode('JIBE_ERR_PLUGIN_DUPLICATE', /appears twice/));
  await assert.rejects(adapters.prepare([{ ...BOTS, expression: 'request.headers[user-agent] ==' }]), isCode('JIBE_ERR_CONFIG_REJECTED', /"no-bots" \(deny-expression\): expected a "string"/));
  await assert.rejects(adapters.prepare([{ name: 'l', kind: 'list', attribute: 'request.nope', values: ['x'], mode: 'deny' }]), isCode('JIBE_ERR_CONFIG_REJECTED', /unknown attribute/));
  await assert.rejects(new ProviderAdapters(undefined, []).prepare([BOTS]), isCode('JIBE_ERR_PLUGIN_UNKNOWN', /kind "deny-expression", which no policy adapter plugin implements/));
  assert.deepEqual(adapters.current.names(), ['in-code'], 'a refused change leaves the running registry');
});

test('MeshConfig extensionProviders: exactly one kind, unique names, known attributes, Istio durations', () => {
  const problems = (providers: string) => {
    const [doc] = parseDocuments(`apiVersion: jibe.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: jibe-system}\nspec:\n  extensionProviders:\n${providers}`, 'mesh.yaml');
    return validateResource(doc).map((e) => `${e.details.field}: ${e.message}`);
  };
  assert.deepEqual(problems('  - name: a\n    envoyExtAuthzHttp: {service: ext-authz.foo.svc.cluster.local, port: 8000, timeout: 1s, statusOnError: "503"}\n  - name: b\n    quota: {maxTokens: 10, tokensPerFill: 5, fillInterval: 1s, key: "request.headers[x-user]"}\n'), []);
  const cases: Array<[string, RegExp]> = [
    ['  - name: a\n', /extensionProviders\[0\]: .*names no kind/],
    ['  - name: a\n    denyExpression: {expression: "source.ip"}\n    list: {attribute: source.ip, values: [1.2.3.4], mode: deny}\n', /names denyExpression and list/],
    ['  - name: a\n    denyExpression: {expression: "x"}\n  - name: a\n    denyExpression: {expression: "y"}\n', /extensionProviders\[1\]\.name: duplicate extension provider name "a"/],
    ['  - name: a\n    list: {attribute: "request.header[x]", values: [v], mode: allow}\n', /list\.attribute: unknown attribute "request.header\[x\]"/],
    ['  - name: a\n    quota: {maxTokens: 1, tokensPerFill: 1, fillInterval: 0s}\n', /quota\.fillInterval: .*at least 1ms/],
    ['  - name: a\n    envoyExtAuthzHttp: {service: "http://ext", port: 80}\n', /envoyExtAuthzHttp\.service: .*not a host/],
    ['  - name: a\n    envoyExtAuthzHttp: {service: ext, port: 80, statusOnError: "forbidden"}\n', /statusOnError/],
    ['  - name: a\n    envoyExtAuthzHttp: {service: ext, port: 80, failOpn: true}\n', /failOpn/],
  ];
  for (const [yaml, expected] of cases) {
    const found = problems(yaml);
    assert.ok(found.some((p) => expected.test(p)), `${expected}: ${JSON.stringify(found)}`);
  }
});

test('compiled providers: Istio defaults, namespace-qualified service, IPv6 literal', () => {
  assert.deepEqual(compileExtensionProvider({ name: 'x', envoyExtAuthzHttp: { service: 'foo/ext-authz.foo.svc.cluster.local', port: 8000 } }), {
    name: 'x',
    kind: 'ext-authz-http',
    url: 'http://ext-authz.foo.svc.cluster.local:8000',
    timeoutMs: 600_000,
    failOpen: false,
    statusOnError: 403,
    includeRequestHeaders: [],
    headersToUpstream: [],
  });
  assert.equal(extAuthzUrl('::1', 9000, 'authz/'), 'http://[::1]:9000/authz');
  assert.deepEqual(compileExtensionProvider({ name: 'q', quota: { maxTokens: 3, tokensPerFill: 1, fillInterval: '1m' } }), { name: 'q', kind: 'quota', maxTokens: 3, tokensPerFill: 1, fillIntervalMs: 60_000 });
});

test('apply refuses a CUSTOM policy naming a provider the MeshConfig does not define', () => {
  const mesh = 'apiVersion: jibe.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: jibe-system}\nspec:\n  extensionProviders:\n  - name: ext-authz\n    envoyExtAuthzHttp: {service: ext, port: 80}\n';
  const policy = (provider: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  action: CUSTOM\n  provider: {name: ${provider}}\n  rules: [{}]\n`;
  assert.equal(validateApply(parseDocuments(`${mesh}---\n${policy('ext-authz')}`, 'a.yaml'), [], new Set()).length, 2);
  assert.throws(
    () => validateApply(parseDocuments(`${mesh}---\n${policy('opa')}`, 'a.yaml'), [], new Set()),
    (e: unknown) => {
      const cause = (e as JibeError).details.causes?.[0];
      return cause?.code === 'JIBE_ERR_REFERENCE' && cause.details.field === 'spec.provider.name' && cause.details.resource === 'AuthorizationPolicy/default/p' && /"opa".*defines ext-authz/.test(cause.message);
    },
  );
  assert.throws(() => validateApply(parseDocuments(policy('ext-authz'), 'a.yaml'), [], new Set()), /problem/, 'without a MeshConfig no provider exists');
});

test('a running proxy: a quota provider from the mesh resource limits per source, kept across unrelated updates; a NACK keeps it', async () => {
  const app = await startUpstream('app');
  const proxy = await startSidecar({ policyAdapterPlugins: plugins() });
  try {
    const port = await freePort();
    const mesh: MeshResource = { type: 'mesh', name: 'mesh', outboundTrafficPolicy: 'ALLOW_ANY', extensionProviders: [QUOTA] };
    const inbound: ListenerResource = {
      ...listener('inbound|9080', 'inbound', port, 'inbound|9080'),
      authz: { destinationPort: 9080, custom: [{ name: 'AuthorizationPolicy/default/quota', provider: 'per-ip', rules: [{}] }], deny: [], allow: [], audit: [] },
    };
    const rest = [routeConfig('inbound|9080', [vhost('inbound', ['*'], [route('default', [], toCluster('inbound|9080||'))])]), cluster('inbound|9080||'), endpoints('inbound|9080||', [app.port])];
    await proxy.apply(fullUpdate([mesh, inbound, ...rest]));
    assert.equal((await request(port, { path: '/a' })).status, 200);
    // The same providers pushed again (another version) keep the bucket: one token left, not a fresh two.
    await proxy.apply(fullUpdate([mesh, inbound, ...rest]));
    assert.equal((await request(port, { path: '/b' })).status, 200);
    const limited = await request(port, { path: '/c' });
    assert.deepEqual([limited.status, limited.body], [429, 'local_rate_limited']);

    // A provider the plugin refuses: rejected, and the quota still holds.
    const broken: MeshResource = { ...mesh, extensionProviders: [{ ...QUOTA, maxTokens: 0 }] };
    await assert.rejects(proxy.apply(fullUpdate([broken, inbound, ...rest])), isCode('JIBE_ERR_CONFIG_REJECTED', /"per-ip" \(quota\): .*must be positive/));
    assert.equal((await request(port, { path: '/d' })).status, 429);

    // Providers gone while a policy still names one: rejected (the listener is unchanged, the check is not skipped).
    await assert.rejects(proxy.apply(fullUpdate([{ ...mesh, extensionProviders: [] }, inbound, ...rest])), isCode('JIBE_ERR_CONFIG_REJECTED', /provider "per-ip" is not a registered policy adapter/));
    assert.equal(app.requests.length, 2);
  } finally {
    await proxy.close();
    await app.close();
  }
});
