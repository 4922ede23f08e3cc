// Two Consul datacenters joined over the WAN, one registry following both:
// instances from each are workloads of the same mesh services, with their
// datacenter as locality region.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_CONVERT_OPTIONS } from '../../../platforms/consul/consul-converters.ts';
import { registerService } from '../../../platforms/consul/consul-registration.ts';
import { ConsulRegistry } from '../../../platforms/consul/registry-consul.ts';
import type { Service } from '../../../core/model/service.ts';
import type { Workload } from '../../../core/model/workload.ts';
import type { RegistryEvent } from '../../../core/registry/platform-registry.ts';
import { consulSkipReason, startConsulAgent, waitUntil } from './consul-agent.ts';
import type { ConsulAgent } from './consul-agent.ts';

describe('consul platform across two datacenters', { skip: consulSkipReason() }, () => {
  let dc1: ConsulAgent;
  let dc2: ConsulAgent;
  let registry: ConsulRegistry | undefined;

  before(async () => {
    dc1 = await startConsulAgent({ datacenter: 'dc1', nodeName: 'server-dc1' });
    dc2 = await startConsulAgent({ datacenter: 'dc2', nodeName: 'server-dc2' });
    await dc2.client().put(`/v1/agent/join/127.0.0.1:${dc1.serfWanPort}`, undefined, { query: { wan: 1 } });
    await waitUntil('dc1 sees dc2', async () => ((await dc1.client().get<string[]>('/v1/catalog/datacenters')).body.includes('dc2') ? true : undefined), 30_000);
  });
  after(async () => {
    await registry?.stop();
    await dc1?.stop();
    await dc2?.stop();
  });

  it('one service, instances from both datacenters, region = datacenter', async () => {
    await registerService(dc1.client(), { service: 'ratings', id: 'ratings-a', port: 9080, address: '127.0.0.1', sidecar: false });
    await registerService(dc2.client(), { service: 'ratings', id: 'ratings-b', port: 9080, address: '127.0.0.2', sidecar: false });
    const services = new Map<string, Service>();
    const workloads = new Map<string, Workload>();
    const apply = (events: RegistryEvent[]) => {
      for (const e of events) {
        if (e.kind === 'sync') {
          services.clear();
          workloads.clear();
          for (const s of e.services) services.set(s.hostname, s);
          for (const w of e.workloads) workloads.set(w.name, w);
        } else if (e.kind === 'service') {
          if (e.op === 'upsert') services.set(e.service.hostname, e.service);
          else services.delete(e.hostname);
        } else if (e.op === 'upsert') workloads.set(e.workload.name, e.workload);
        else workloads.delete(e.name);
      }
    };
    // The registry talks to dc1's agent only; Consul forwards dc2's queries over the WAN.
    registry = new ConsulRegistry(dc1.client(), { convert: DEFAULT_CONVERT_OPTIONS, datacenters: ['dc1', 'dc2'] });
    await registry.watch(apply);
    const found = await waitUntil('instances of both datacenters', () => {
      const a = workloads.get('ratings-a.server-dc1.dc1');
      const b = workloads.get('ratings-b.server-dc2.dc2');
      return a && b ? { a, b } : undefined;
    });
    assert.equal(found.a.locality?.region, 'dc1');
    assert.equal(found.b.locality?.region, 'dc2');
    assert.equal(found.b.address, '127.0.0.2');
    assert.deepEqual([...services.keys()], ['ratings.default.svc.cluster.local'], 'one mesh service for both datacenters');

    // A change in dc2 arrives through dc2's own blocking queries.
    await dc2.client().put('/v1/agent/service/deregister/ratings-b');
    await waitUntil('dc2 instance gone', () => (workloads.has('ratings-b.server-dc2.dc2') ? undefined : true));
    assert.ok(workloads.has('ratings-a.server-dc1.dc1'));
  });
});
