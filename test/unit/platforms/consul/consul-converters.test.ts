// The Consul → model mapping, pinned by fixture files: what Consul's
// /v1/health/service answers look like, and what the mesh must see.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_CONVERT_OPTIONS, isJibeSidecar, sidecarKey, toService, toWorkload } from '../../../../platforms/consul/consul-converters.ts';
import type { ConsulHealthEntry } from '../../../../platforms/consul/consul-types.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const load = <T>(name: string): T => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;

function sidecarsOf(entries: ConsulHealthEntry[]): Map<string, ConsulHealthEntry> {
  const out = new Map<string, ConsulHealthEntry>();
  for (const e of entries) if (isJibeSidecar(e)) out.set(sidecarKey(e.Node.Node, e.Service.Proxy!.DestinationServiceID!), e);
  return out;
}

describe('Consul converters', () => {
  it('ratings: labels from tags and Meta, protocol, service port, address, locality, Jibe sidecar; a failing instance unhealthy', () => {
    const sidecars = sidecarsOf(load('ratings-sidecar-proxy.health.json'));
    assert.equal(sidecars.size, 1, 'only the sidecar registered as a Jibe sidecar counts');
    const converted = toService(load('ratings.health.json'), sidecars, DEFAULT_CONVERT_OPTIONS);
    assert.deepEqual(JSON.parse(JSON.stringify(converted)), load('ratings.expected.json'));
  });

  it('malformed registrations are reported and skipped, the rest converted', () => {
    const converted = toService(load('malformed.health.json'), new Map(), DEFAULT_CONVERT_OPTIONS);
    assert.deepEqual(JSON.parse(JSON.stringify(converted)), load('malformed.expected.json'));
  });

  it('a failing instance stays in the mesh, unhealthy; a warning counts as healthy only when allowed', () => {
    const entries = load<ConsulHealthEntry[]>('ratings.health.json');
    entries[2].Checks[1].Status = 'warning';
    const strict = toService(entries, new Map(), DEFAULT_CONVERT_OPTIONS);
    assert.equal(strict.workloads.find((w) => w.name === 'ratings-3.vm-3.dc1')?.health, 'unhealthy');
    const lenient = toService(entries, new Map(), { ...DEFAULT_CONVERT_OPTIONS, warningIsHealthy: true });
    assert.equal(lenient.workloads.find((w) => w.name === 'ratings-3.vm-3.dc1')?.health, 'healthy');
  });

  it('a Jibe sidecar that is down makes its instance unhealthy', () => {
    const sidecar = load<ConsulHealthEntry[]>('ratings-sidecar-proxy.health.json')[0];
    sidecar.Checks[0].Status = 'critical';
    const [instance] = load<ConsulHealthEntry[]>('ratings.health.json');
    const parsed = toWorkload(instance, sidecar, DEFAULT_CONVERT_OPTIONS);
    assert.ok('workload' in parsed);
    assert.equal(parsed.workload.health, 'unhealthy');
    assert.deepEqual(parsed.workload.proxy, { inboundPorts: { 9080: 21000 } });
  });

  it('namespace, service account and domain come from Meta and options', () => {
    const [instance] = load<ConsulHealthEntry[]>('ratings.health.json');
    instance.Service.Meta = { 'jibe-namespace': 'books', 'jibe-service-account': 'ratings-sa' };
    const parsed = toWorkload(instance, undefined, { ...DEFAULT_CONVERT_OPTIONS, domain: 'mesh.example', trustDomain: 'example.org' });
    assert.ok('workload' in parsed);
    assert.equal(parsed.hostname, 'ratings.books.svc.mesh.example');
    assert.equal(parsed.workload.identity, 'spiffe://example.org/ns/books/sa/ratings-sa');
    assert.deepEqual(parsed.workload.labels, { version: 'v1' }, 'jibe-* Meta keys are not labels');
  });

  it('a service name that is not a DNS label is skipped with a reason', () => {
    const [instance] = load<ConsulHealthEntry[]>('ratings.health.json');
    instance.Service.Service = 'my_service';
    const parsed = toWorkload(instance, undefined, DEFAULT_CONVERT_OPTIONS);
    assert.ok('message' in parsed && /DNS label/.test(parsed.message));
  });

  it('instances from two datacenters are distinct workloads with their region', () => {
    const entries = load<ConsulHealthEntry[]>('ratings.health.json').slice(0, 1);
    const other = structuredClone(entries[0]);
    other.Node.Datacenter = 'dc2';
    const converted = toService([...entries, other], new Map(), DEFAULT_CONVERT_OPTIONS);
    assert.deepEqual(converted.workloads.map((w) => [w.name, w.locality?.region]), [
      ['ratings-1.vm-1.dc1', 'dc1'],
      ['ratings-1.vm-1.dc2', 'dc2'],
    ]);
    assert.equal(converted.services.length, 1);
  });
});
