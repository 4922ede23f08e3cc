// Two control-plane replicas on one Consul, with ACLs on (default deny) and
// the minimal policy from platforms/consul/README.md: they share one CA root,
// one rule set and one registry view; a Consul ACL token with a service
// identity proves that service's workload identity.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { Resource } from '../../../core/model/resource.ts';
import type { Workload } from '../../../core/model/workload.ts';
import { CONSUL_ACL_TOKEN_TYPE, ConsulAclAuthenticator } from '../../../platforms/consul/authenticator-consul-acl.ts';
import { registerService } from '../../../platforms/consul/consul-registration.ts';
import { consulSkipReason, startConsulAgent, waitUntil } from './consul-agent.ts';
import type { ConsulAgent } from './consul-agent.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

/** The control plane's minimal policy, as documented in platforms/consul/README.md. */
const CONTROL_PLANE_RULES = `
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
key_prefix "jibe/" { policy = "write" }
`;

describe('two control-plane replicas on one Consul with ACLs', { skip: consulSkipReason() }, () => {
  let agent: ConsulAgent;
  let token: string;
  const planes: RunningControlPlane[] = [];
  const dirs: string[] = [];

  async function start(consulToken: string): Promise<RunningControlPlane> {
    const dir = await mkdtemp(join(tmpdir(), 'jibe-consul-replica-'));
    dirs.push(dir);
    const cp = await startTestControlPlane({
      dataDir: dir,
      configStore: 'consul',
      stateStore: 'consul',
      platforms: ['vm', 'consul'],
      pluginOptions: { consul: { address: agent.address, token: consulToken } },
    });
    planes.push(cp);
    return cp;
  }

  const get = async <T>(cp: RunningControlPlane, path: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${cp.ports.api}${path}`);
    assert.equal(res.status, 200, `${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  };

  before(async () => {
    agent = await startConsulAgent({ acl: true });
    await agent.client().put('/v1/acl/policy', { Name: 'jibe-control-plane', Rules: CONTROL_PLANE_RULES });
    token = (await agent.client().put<{ SecretID: string }>('/v1/acl/token', { Description: 'jibe control plane', Policies: [{ Name: 'jibe-control-plane' }] })).body.SecretID;
  });
  after(async () => {
    for (const cp of planes) await cp.close();
    await agent?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('a token without the policy is refused at start with JIBE_ERR_CONSUL', async () => {
    await assert.rejects(start('00000000-0000-4000-8000-000000000000'), (err: unknown) => isJibeError(err) && err.code === 'JIBE_ERR_CONSUL');
  });

  it('both replicas share the CA root, the rules and the registry view', async () => {
    const [a, b] = await Promise.all([start(token), start(token)]);
    assert.deepEqual(await get(a, '/api/v1/trust-bundle'), await get(b, '/api/v1/trust-bundle'), 'one CA root, whichever replica created it');

    const rule: Resource = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'ratings', namespace: 'default' }, spec: { host: 'ratings', subsets: [{ name: 'v1', labels: { version: 'v1' } }] } };
    const applied = await fetch(`http://127.0.0.1:${a.ports.api}/api/v1/config/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ documents: [{ resource: rule, source: {} }] }),
    });
    assert.equal(applied.status, 200, await applied.text());
    await waitUntil('the rule on replica b', async () => ((await get<{ items: Resource[] }>(b, '/api/v1/config?kind=DestinationRule')).items.some((r) => r.metadata.name === 'ratings') ? true : undefined));

    // A workload registers with the management token; both replicas see it, alike.
    await registerService(agent.client(), { service: 'ratings', id: 'ratings-1', port: 9080, address: '127.0.0.1', meta: { version: 'v1' }, sidecar: false });
    const view = async (cp: RunningControlPlane) => (await get<{ workloads: Workload[] }>(cp, '/api/v1/workloads')).workloads.filter((w) => w.platform === 'consul');
    await waitUntil('ratings on both replicas', async () => ((await view(a)).length === 1 && (await view(b)).length === 1 ? true : undefined));
    assert.deepEqual(await view(a), await view(b));
  });

  it('a Consul ACL token with one service identity proves that identity; others prove none', async () => {
    const service = (await agent.client().put<{ SecretID: string }>('/v1/acl/token', { ServiceIdentities: [{ ServiceName: 'ratings' }] })).body.SecretID;
    const authenticator = new ConsulAclAuthenticator(agent.client(), { trustDomain: 'cluster.local', namespace: 'default' });
    assert.deepEqual(await authenticator.authenticate({ type: CONSUL_ACL_TOKEN_TYPE, token: service }), {
      spiffeId: 'spiffe://cluster.local/ns/default/sa/ratings',
      namespace: 'default',
      serviceAccount: 'ratings',
    });
    assert.equal(await authenticator.authenticate({ type: CONSUL_ACL_TOKEN_TYPE, token }), undefined, 'a policy token names no service');
    assert.equal(await authenticator.authenticate({ type: CONSUL_ACL_TOKEN_TYPE, token: '11111111-2222-4333-8444-555555555555' }), undefined, 'unknown token');
    assert.equal(await authenticator.authenticate({ type: 'bootstrap-token', token: service }), undefined, 'another credential type');
  });
});
