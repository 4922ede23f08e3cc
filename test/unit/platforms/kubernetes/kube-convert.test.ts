// The pure converters against fixture files: a Service, its EndpointSlice and
// Pods in, the mesh's Service and Workloads out (golden file beside it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments, parse } from 'yaml';
import { endpointWorkloadName, parsePortMap, toService, toWorkload } from '../../../../platforms/kubernetes/kube-convert.ts';
import type { KubeEndpointSlice, KubeObject, KubePod, KubeService } from '../../../../platforms/kubernetes/kube-types.ts';

const options = { domain: 'cluster.local', trustDomain: 'example.org' };
const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

function load(name: string): KubeObject[] {
  return parseAllDocuments(readFileSync(fixture(name), 'utf8')).map((d) => d.toJSON() as KubeObject);
}

const objects = load('reviews.yaml');
const svc = objects.find((o) => o.kind === 'Service') as KubeService;
const slice = objects.find((o) => o.kind === 'EndpointSlice') as KubeEndpointSlice;
const pods = new Map(objects.filter((o) => o.kind === 'Pod').map((p) => [p.metadata.name, p as KubePod]));
const expected = parse(readFileSync(fixture('reviews.expected.yaml'), 'utf8'));

function convertAll() {
  const out = [];
  for (const endpoint of slice.endpoints ?? []) {
    const name = endpointWorkloadName(slice, endpoint)!;
    const w = toWorkload('bookinfo', name, pods.get(name), [{ slice, endpoint }], () => svc, options);
    if (w) out.push(w);
  }
  return out;
}

test('a Service becomes one mesh service: canonical host, protocols from names and appProtocol, cluster IP, exportTo', () => {
  assert.deepEqual(toService(svc, options), expected.service);
});

test('each endpoint with a known Pod becomes a workload: identity from its service account, subsets from labels, zone from the slice, health from readiness', () => {
  // JSON round trip: the golden file's numeric keys come back as strings, as in the model's Records.
  assert.deepEqual(JSON.parse(JSON.stringify(convertAll())), JSON.parse(JSON.stringify(expected.workloads)));
});

test('an endpoint naming a Pod not yet seen waits for it; an endpoint without a Pod gets a stable name', () => {
  const unseen = slice.endpoints!.find((e) => e.targetRef?.name === 'reviews-v3-not-yet-seen')!;
  assert.equal(toWorkload('bookinfo', 'reviews-v3-not-yet-seen', undefined, [{ slice, endpoint: unseen }], () => svc, options), undefined);
  const bare = { addresses: ['127.0.0.1'] };
  assert.equal(endpointWorkloadName(slice, bare), 'reviews-127-0-0-1');
  const w = toWorkload('bookinfo', 'reviews-127-0-0-1', undefined, [{ slice, endpoint: bare }], () => svc, options)!;
  assert.equal(w.address, '127.0.0.1');
  assert.equal(w.identity, 'spiffe://example.org/ns/bookinfo/sa/default');
  assert.equal(w.health, 'healthy');
});

test('terminating and finished pods take no traffic; headless and ExternalName services', () => {
  const pod = structuredClone(pods.get('reviews-v1-7d8f')!);
  pod.metadata.deletionTimestamp = '2025-01-01T00:00:00Z';
  const endpoint = slice.endpoints![0];
  assert.equal(toWorkload('bookinfo', pod.metadata.name, pod, [{ slice, endpoint }], () => svc, options)!.health, 'unhealthy');
  pod.status!.phase = 'Succeeded';
  assert.equal(toWorkload('bookinfo', pod.metadata.name, pod, [{ slice, endpoint }], () => svc, options), undefined);
  const headless = toService({ metadata: { name: 'db', namespace: 'x' }, spec: { clusterIP: 'None', ports: [{ port: 5432, name: 'tcp-pg' }] } }, options);
  assert.equal(headless.addresses, undefined);
  assert.equal(headless.ports[0].protocol, 'tcp');
  assert.equal(toService({ metadata: { name: 'ext', namespace: 'x' }, spec: { type: 'ExternalName', externalName: 'example.com' } }, options).resolution, 'DNS');
});

test('inbound port annotations: well-formed maps only', () => {
  assert.deepEqual(parsePortMap('9080=15080, 9090:15090'), { 9080: 15080, 9090: 15090 });
  assert.equal(parsePortMap('9080'), undefined);
  assert.equal(parsePortMap(undefined), undefined);
});
