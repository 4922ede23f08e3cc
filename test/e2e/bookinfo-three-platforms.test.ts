// End to end, issue 9: BookInfo across Kubernetes, Consul and a VM in one mesh
// (the harness: test/e2e/fixtures/bookinfo-mesh.ts). productpage and reviews
// v1/v2 are Kubernetes pods (network namespaces, real kube-apiserver objects,
// TokenRequest tokens), reviews v3 a VM joined with capture, ratings a Consul
// service with its sidecar, details a ServiceEntry + WorkloadEntry; one control
// plane process, traffic through the ingress gateway.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { runJibe } from '../helpers/jibe-cli.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { Defer } from '../integration/vm/vm-netns.ts';
import { bookinfoMeshProblem, execIn, MIXED, POD_PORTS, startBookinfoMesh, TRUST_PREFIX as TD } from './fixtures/bookinfo-mesh.ts';
import type { BookinfoMesh } from './fixtures/bookinfo-mesh.ts';
import { productpage, sampleServedBy, servedBy } from './fixtures/bookinfo-page.ts';

const problem = bookinfoMeshProblem();
// Under CI a missing peer or missing root is a failure, never a skip.
const skip = problem && process.env.CI !== 'true' ? problem : false;

describe('BookInfo across Kubernetes, Consul and a VM in one mesh (issue 9)', { timeout: 240_000, skip }, () => {
  const cleanups: Array<() => unknown> = [];
  const defer: Defer = (fn) => cleanups.push(fn);
  let mesh: BookinfoMesh;

  const page = (user?: string) => productpage(mesh.gateway, user);
  const sample = (n: number, user?: string) => sampleServedBy(mesh.gateway, n, user);
  /** Every part of the page: details (WorkloadEntry), reviews (k8s or VM), ratings stars (Consul) where the version shows them. */
  const assertWhole = (html: string) => {
    assert.match(html, /The Comedy of Errors/);
    assert.match(html, /Book Details/, 'details rendered');
    assert.doesNotMatch(html, /Error fetching product details|details are currently unavailable/i);
    assert.match(html, /Book Reviews/);
    assert.doesNotMatch(html, /reviews are currently unavailable/i);
    const v = servedBy(html);
    assert.notEqual(v, 'none', 'reviews rendered');
    if (v !== 'reviews-v1') {
      assert.match(html, /&#9733;/, `${v} shows ratings stars`);
      assert.doesNotMatch(html, /Ratings service is currently unavailable/);
    }
  };
  const metricsIn = async (ns: string, port: number) => (await execIn(ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/stats/prometheus`])).split('\n');
  /** A request as an app with HTTP_PROXY makes it: absolute-form URL to the sidecar's outbound port. */
  const viaProxy = (port: number, url: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: url, headers: { host: new URL(url).host }, agent: false, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy(new Error('no answer')));
      req.on('error', reject);
    });
  const series = (lines: string[], labels: Record<string, string>) => {
    let total = 0;
    for (const l of lines) {
      if (l.startsWith('istio_requests_total{') && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) total += Number(l.slice(l.lastIndexOf(' ') + 1));
    }
    return total;
  };
  /** inbound (reporter=destination) request series: "source_app->destination_app" → "policy principal" set. */
  const hops = (lines: string[], into: Map<string, Set<string>>) => {
    for (const line of lines.filter((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="destination"'))) {
      const l = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      const hop = `${l.source_app}->${l.destination_app}`;
      if (!into.has(hop)) into.set(hop, new Set());
      into.get(hop)!.add(`${l.connection_security_policy} ${l.source_principal}`);
    }
  };

  before(async () => {
    if (problem) assert.fail(`cannot run: ${problem}`);
    mesh = await startBookinfoMesh(defer, { prefix: '100.72.9', placement: MIXED });
  });

  after(async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  });

  it('knows each workload on its platform: reviews from Kubernetes and the VM, ratings from Consul, details from a WorkloadEntry', async () => {
    const all = await mesh.workloads();
    const by = Object.fromEntries(all.map((w) => [w.name, w]));
    for (const name of ['productpage-v1', 'reviews-v1', 'reviews-v2']) {
      assert.equal(by[name]?.platform, 'kubernetes', `${name}: ${JSON.stringify(by[name])}`);
      assert.equal(by[name].address, mesh.pods.get(name)!.address);
      assert.equal(by[name].identity, `${TD}/bookinfo-${name.split('-')[0]}`);
    }
    assert.equal(by['reviews-v3']?.platform, 'vm');
    assert.equal(by['reviews-v3'].address, mesh.vm!.address);
    assert.ok(all.some((w) => w.platform === 'consul' && w.labels.app === 'ratings'), JSON.stringify(all.map((w) => `${w.name} ${w.platform}`)));
    const { services } = (await (await fetch(`${mesh.api}/api/v1/services`)).json()) as { services: Array<{ hostname: string; platforms: string[] }> };
    const platforms = (host: string) => services.find((s) => s.hostname === `${host}.default.svc.cluster.local`)?.platforms.sort();
    assert.deepEqual(platforms('reviews'), ['kubernetes', 'vm'], 'one reviews service from two platforms');
    assert.deepEqual(platforms('ratings'), ['consul']);
    assert.ok(platforms('details'), `details from the ServiceEntry: ${JSON.stringify(services)}`);
    const capture = await mesh.vm!.save();
    assert.match(capture, /-A JIBE_INBOUND -p tcp -m tcp --dport 9080 .*-j JIBE_IN_REDIRECT/, 'the VM captures its inbound port');
  });

  it('renders the whole page through the ingress gateway: details, reviews and ratings stars', async () => {
    const html = await waitFor(async () => {
      const h = await page();
      return servedBy(h) !== 'reviews-v1' && h.includes('&#9733;') ? h : undefined;
    }, `a page with stars\n${mesh.logs()}`, 60_000);
    assertWhole(html);
    const counts = await sample(30);
    assert.deepEqual(Object.keys(counts).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], `all versions across two platforms: ${JSON.stringify(counts)}`);
  });

  const split = async (k8s: number, vmWeight: number) => {
    await mesh.applyYaml(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: ${k8s / 2} }
    - { destination: { host: reviews, subset: v2 }, weight: ${k8s / 2} }
    - { destination: { host: reviews, subset: v3 }, weight: ${vmWeight} }
`);
    await waitFor(mesh.converged, 'proxies to ACK the split');
    const n = 200;
    const counts = await sample(n);
    const onVm = counts['reviews-v3'] ?? 0;
    assert.equal(onVm + (counts['reviews-v1'] ?? 0) + (counts['reviews-v2'] ?? 0), n, JSON.stringify(counts));
    // Binomial(200, p): 4 standard deviations either side.
    const p = vmWeight / 100;
    const tolerance = Math.ceil(4 * Math.sqrt(n * p * (1 - p)));
    assert.ok(Math.abs(onVm - n * p) <= tolerance, `VM share near ${vmWeight}% (±${tolerance}): ${JSON.stringify(counts)}`);
  };

  it('splits reviews 50/50 between the Kubernetes subsets (v1+v2) and the VM subset (v3)', () => split(50, 50));
  it('then 90/10', () => split(90, 10));

  it('pins end-user jason to v3 on the VM, everyone else stays on the split', async () => {
    await mesh.applyYaml(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews, subset: v3 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
`);
    await waitFor(mesh.converged, 'proxies to ACK the header route');
    assert.deepEqual(await sample(15, 'jason'), { 'reviews-v3': 15 });
    assert.deepEqual(await sample(10), { 'reviews-v1': 10 });
  });

  it('secures every inter-proxy hop with mutual TLS, with the caller\'s identity', async () => {
    const seen = new Map<string, Set<string>>();
    for (const name of ['reviews-v1', 'reviews-v2']) hops(await metricsIn(mesh.pods.get(name)!.ns, POD_PORTS.metrics), seen);
    hops(await metricsIn(mesh.vm!.ns, POD_PORTS.admin), seen);
    hops((await (await fetch(`http://127.0.0.1:${mesh.ratings!.metricsPort}/stats/prometheus`)).text()).split('\n'), seen);
    hops(await metricsIn(mesh.pods.get('productpage-v1')!.ns, POD_PORTS.metrics), seen);
    const dump = JSON.stringify(Object.fromEntries([...seen].map(([k, v]) => [k, [...v]])));
    assert.deepEqual([...(seen.get('productpage->reviews') ?? [])], [`mutual_tls ${TD}/bookinfo-productpage`], dump);
    assert.deepEqual([...(seen.get('reviews->ratings') ?? [])], [`mutual_tls ${TD}/bookinfo-reviews`], dump);
    // The gateway's hop into productpage too (productpage's inbound side reports it). details has no sidecar
    // (a WorkloadEntry for a plain app), so productpage→details is the one plaintext hop, and no inbound reports it.
    assert.ok([...seen.keys()].some((h) => h.endsWith('->productpage')), `the gateway→productpage hop: ${dump}`);
    for (const [hop, policies] of seen) for (const p of policies) assert.match(p, /^mutual_tls spiffe:\/\//, `${hop}: ${p} (${dump})`);
  });

  it('an AuthorizationPolicy allowing only productpage into reviews denies ratings\' sidecar (403) and keeps the page working', async () => {
    await mesh.applyYaml(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - route: [{ destination: { host: reviews, subset: v3 }, weight: 50 }, { destination: { host: reviews, subset: v2 }, weight: 50 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-from-productpage, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/bookinfo-productpage] } }] }]
`);
    await waitFor(mesh.converged, 'proxies to ACK the policy');
    // ratings' app would call reviews through its sidecar's outbound port: do just that.
    const denials = async () => ({
      k8s: series(await metricsIn(mesh.pods.get('reviews-v2')!.ns, POD_PORTS.metrics), { source_app: 'ratings', response_code: '403', reporter: 'destination' }),
      vm: series(await metricsIn(mesh.vm!.ns, POD_PORTS.admin), { source_app: 'ratings', response_code: '403', reporter: 'destination' }),
    });
    const before = await denials();
    const statuses = new Set<number>();
    // 20 calls over a 50/50 split: both endpoints see some (all on one side: p = 2e-6).
    for (let i = 0; i < 20; i++) statuses.add(await viaProxy(mesh.ratings!.outboundPort, 'http://reviews:9080/reviews/0'));
    assert.deepEqual([...statuses], [403]);
    const denied = await denials();
    assert.ok(denied.k8s > before.k8s && denied.vm > before.vm, `denied at the Kubernetes pod and at the VM alike: ${JSON.stringify({ before, denied })}`);
    const pages = await sample(10);
    assert.equal((pages['reviews-v2'] ?? 0) + (pages['reviews-v3'] ?? 0), 10, JSON.stringify(pages));
    assertWhole(await page());
  });

  it('jibe analyze on the live mesh reports no errors', async () => {
    const res = await runJibe(['analyze', '--server', mesh.api, '-o', 'json']);
    const report = JSON.parse(res.stdout) as { summary: { errors: number } };
    assert.equal(report.summary.errors, 0, res.stdout);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('keeps serving on last known config when Consul stops, then when the API server stops too', async () => {
    // Judge only once the control plane has seen each peer fail (its warn-level log says so).
    const seen = (text: string) => mesh.cp.output().split(text).length - 1;
    const consulFailures = seen('Consul query failed; keeping the last known');
    await mesh.consul.stop();
    await waitFor(() => seen('Consul query failed; keeping the last known') > consulFailures, `the control plane to notice Consul is gone\n${mesh.cp.output()}`);
    for (let i = 0; i < 10; i++) assertWhole(await page());
    const kubeFailures = seen('failed; re');
    await mesh.cluster.stop();
    await waitFor(() => seen('failed; re') > kubeFailures, `the control plane to notice the API server is gone\n${mesh.cp.output()}`);
    for (let i = 0; i < 10; i++) assertWhole(await page());
    assert.ok((await mesh.workloads()).some((w) => w.platform === 'kubernetes') && (await mesh.workloads()).some((w) => w.platform === 'consul'), 'both registries keep their last known workloads');
    assert.equal(mesh.cp.child.exitCode, null, 'the control plane is still up');
  });
});
