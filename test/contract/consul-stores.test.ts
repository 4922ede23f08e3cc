// The store contracts against a real Consul agent: the config and state
// stores on Consul KV must behave exactly as the file stores do. Each case
// gets its own KV prefix on one dev agent.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ConsulConfigStore } from '../../platforms/consul/config-store-consul.ts';
import { ConsulStateStore } from '../../platforms/consul/state-store-consul.ts';
import { SecretBox } from '../../platforms/consul/consul-secret-box.ts';
import { fromBase64 } from '../../platforms/consul/consul-kv.ts';
import type { ConsulKvEntry } from '../../platforms/consul/consul-types.ts';
import { consulSkipReason, startConsulAgent } from '../integration/consul/consul-agent.ts';
import type { ConsulAgent } from '../integration/consul/consul-agent.ts';
import { configStoreContract } from './config-store.contract.ts';
import { stateStoreContract } from './state-store.contract.ts';

const skip = consulSkipReason();
let agent: ConsulAgent | undefined;

function requireAgent(): ConsulAgent {
  assert.ok(agent, 'the Consul agent did not start');
  return agent;
}

async function removePrefix(prefix: string): Promise<void> {
  await requireAgent().client().request('DELETE', `/v1/kv/${prefix}`, { query: { recurse: true } });
}

describe('Consul stores', { skip }, () => {
  before(async () => {
    agent = await startConsulAgent();
  });
  after(async () => {
    await agent?.stop();
  });

  configStoreContract('consul', async () => {
    const prefix = `jibe-test/${randomUUID()}/`;
    const open = async () => new ConsulConfigStore(requireAgent().client(), { prefix, waitMs: 5_000 });
    return { store: await open(), reopen: open, cleanup: () => removePrefix(prefix) };
  });

  stateStoreContract('consul', async () => {
    const prefix = `jibe-test/${randomUUID()}/`;
    const open = async () => new ConsulStateStore(requireAgent().client(), { prefix });
    return { store: await open(), reopen: open, cleanup: () => removePrefix(prefix) };
  });

  stateStoreContract('consul, secrets sealed', async () => {
    const prefix = `jibe-test/${randomUUID()}/`;
    const secrets = new SecretBox(Buffer.alloc(32, 1));
    const open = async () => new ConsulStateStore(requireAgent().client(), { prefix, secrets });
    return { store: await open(), reopen: open, cleanup: () => removePrefix(prefix) };
  });

  it('a sealed secret is not readable in Consul KV, and a replica without the key file refuses it', async () => {
    const prefix = `jibe-test/${randomUUID()}/`;
    const store = new ConsulStateStore(requireAgent().client(), { prefix, secrets: new SecretBox(Buffer.alloc(32, 2)) });
    try {
      await store.put('ca/root-key', { pem: 'PRIVATE-KEY-MATERIAL' }, { secret: true });
      const { body } = await requireAgent().client().get<ConsulKvEntry[]>(`/v1/kv/${prefix}`, { query: { recurse: true } });
      assert.ok(!fromBase64(body[0].Value).includes('PRIVATE-KEY-MATERIAL'));
      await assert.rejects(new ConsulStateStore(requireAgent().client(), { prefix }).get('ca/root-key'), /encrypted/);
    } finally {
      await removePrefix(prefix);
    }
  });

  it("two replicas' config stores see each other's writes through the watch", async () => {
    const prefix = `jibe-test/${randomUUID()}/`;
    const a = new ConsulConfigStore(requireAgent().client(), { prefix, waitMs: 5_000 });
    const b = new ConsulConfigStore(requireAgent().client(), { prefix, waitMs: 5_000 });
    const seen: string[] = [];
    let wake: () => void = () => {};
    b.watch((events) => {
      for (const e of events) seen.push(`${e.type} ${e.resource.metadata.name}`);
      wake();
    });
    const waitFor = async (n: number) => {
      const guard = Date.now() + 10_000;
      while (seen.length < n) {
        assert.ok(Date.now() < guard, `expected ${n} events, got ${JSON.stringify(seen)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
    };
    try {
      // Let b's watch take its baseline before a writes (events are for changes after watch()).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews'] } };
      await a.apply([vs]);
      await waitFor(1);
      await a.delete([{ kind: 'VirtualService', namespace: 'default', name: 'reviews' }]);
      await waitFor(2);
      assert.deepEqual(seen, ['upsert reviews', 'delete reviews']);
      assert.deepEqual(await b.list(), []);
    } finally {
      await a.close();
      await b.close();
      await removePrefix(prefix);
    }
  });
});
