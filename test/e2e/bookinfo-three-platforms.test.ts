// End to end, issue 9: BookInfo across Kubernetes, Consul and a VM in one mesh.
//
// - productpage and reviews v1/v2 are Kubernetes "pods": network namespaces on
//   a LAN with the host, each running the app (loopback only) and `jibe proxy`
//   beside it. The harness plays kubelet and the EndpointSlice controller:
//   ServiceAccounts, Services, Pods and EndpointSlices go into a real
//   kube-apiserver, and each sidecar trades a TokenRequest-API token (audience
//   jibe) for its certificate over the TLS API, pinning the roots the control
//   plane published in the jibe-ca-root-cert ConfigMap: the real Kubernetes
//   path. The pod sidecars use an explicit outbound port (HTTP_PROXY) rather
//   than capture: pod capture is the injector's init container, covered by
//   the capture tests; the VM below is the capture path here.
// - reviews v3 is a VM: a namespace where `jibe agent join --token` installs
//   iptables capture, drops root and runs the sidecar (mTLS).
// - ratings is a Consul service (dev agent) with its Jibe sidecar on the host.
// - details is a ServiceEntry + WorkloadEntry pointing at a plain app on the
//   host (no sidecar: the productpage→details hop is plaintext by design).
// - One control plane process reads all three (`--platforms
//   vm,consul,kubernetes`); the ingress gateway is a `jibe proxy` on the host.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../cli/up/ports.ts';
import { registerKubeWorkload } from '../../cli/up/local-kube.ts';
import { parseDocuments } from '../../core/config/load-documents.ts';
import type { Workload } from '../../core/model/workload.ts';
import { BOOKINFO_NETWORKING_DIR, BOOKINFO_WORKLOADS } from '../../deploy/samples/bookinfo/bookinfo.ts';
import { registerService } from '../../platforms/consul/consul-registration.ts';
import { kubePath } from '../../platforms/kubernetes/kube-client.ts';
import { JIBE, REPO_ROOT, runJibe } from '../helpers/jibe-cli.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { peerBinary } from '../peers/paths.ts';
import { startConsulAgent } from '../integration/consul/consul-agent.ts';
import type { ConsulAgent } from '../integration/consul/consul-agent.ts';
import { ensureNamespace, ensureServiceAccount, installCrds, serviceAccountToken } from '../integration/kubernetes/kube-setup.ts';
import { startTestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import type { TestCluster } from '../integration/kubernetes/kube-test-cluster.ts';
import { joinVm, startLan, startVm, vmEnvironmentProblem } from '../integration/vm/vm-netns.ts';
import type { Defer, JoinedAgent, Lan, Vm } from '../integration/vm/vm-netns.ts';

const PREFIX = '100.72.9';
/** Where `ratings` resolves in the VM: no host has it, capture takes the call to the sidecar, which routes by Host. */
const RATINGS_VIP = `${PREFIX}.250`;
const TD = 'spiffe://cluster.local/ns/default/sa';
const missingPeers = ['consul', 'etcd', 'kube-apiserver'].filter((b) => !peerBinary(b));
const problem = vmEnvironmentProblem() ?? (missingPeers.length ? `${missingPeers.join(', ')} not installed (node_modules/.bin/node test/peers/install.ts ${missingPeers.join(' ')})` : undefined);
// Under CI a missing peer or missing root is a failure, never a skip.
const skip = problem && process.env.CI !== 'true' ? problem : false;

const workload = (name: string) => BOOKINFO_WORKLOADS.find((w) => w.name === name)!;

interface Proc {
  child: ChildProcess;
  output(): string;
}

describe('BookInfo across Kubernetes, Consul and a VM in one mesh (issue 9)', { timeout: 240_000, skip }, () => {
  const cleanups: Array<() => unknown> = [];
  const defer: Defer = (fn) => cleanups.push(fn);
  let dir: string;
  let lan: Lan;
  let cluster: TestCluster;
  let consul: ConsulAgent;
  let cp: Proc;
  let api: string;
  let admin: string;
  let gateway: string;
  const pods = new Map<string, Vm>();
  let vm: Vm;
  let agent: JoinedAgent;
  const procs: Record<string, Proc> = {};
  const ports = { ratingsApp: 0, ratingsInbound: 0, ratingsOutbound: 0, ratingsMetrics: 0, detailsApp: 0 };

  /** A process of the harness, killed at cleanup; output kept for failure messages. */
  const start = (name: string, command: string, args: string[], env: Record<string, string> = {}): Proc => {
    if (problem) assert.fail(`cannot run: ${problem}`);
    let out = '';
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    defer(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    });
    const p = { child, output: () => out };
    procs[name] = p;
    return p;
  };
  const inNs = (ns: string) => ['netns', 'exec', ns, process.execPath];
  const logs = () => Object.entries(procs).map(([n, p]) => `--- ${n} (exit ${p.child.exitCode})\n${p.output().slice(-1500)}`).join('\n');

  const applyYaml = async (yaml: string) => {
    const res = await fetch(`${api}/api/v1/config/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents: parseDocuments(yaml) }) });
    assert.equal(res.status, 200, await res.text());
  };
  const converged = async () => {
    const res = await runJibe(['proxy-status', '--server', api, '-o', 'json']);
    const { version, proxies } = JSON.parse(res.stdout) as { version: string; proxies: Array<{ syncedVersion?: string; pending: boolean }> };
    // gateway, productpage, reviews v1/v2/v3, ratings
    return proxies.length >= 6 && proxies.every((p) => p.syncedVersion === version && !p.pending);
  };
  const page = async (user?: string) => {
    const res = await fetch(`${gateway}/productpage`, { headers: user ? { cookie: `user=${user}` } : {}, signal: AbortSignal.timeout(10_000) });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET /productpage answered ${res.status}: ${body.slice(0, 300)}`);
    return body;
  };
  const servedBy = (html: string) => /Reviews served by: (reviews-v\d)/.exec(html)?.[1] ?? 'none';
  const sample = async (n: number, user?: string) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const v = servedBy(await page(user));
      counts[v] = (counts[v] ?? 0) + 1;
    }
    return counts;
  };
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
  const metricsIn = async (ns: string, port: number) => (await exec(ns, 'curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/stats/prometheus`])).split('\n');
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
  const exec = (ns: string, cmd: string, args: string[]) =>
    new Promise<string>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('exit', () => resolve(out));
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
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-e2e-3p-'));
    fs.chmodSync(dir, 0o755);
    defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    lan = await startLan(defer, PREFIX);

    cluster = await startTestCluster();
    defer(() => cluster.stop());
    const kube = cluster.client();
    await installCrds(kube);
    await ensureNamespace(kube, 'jibe-system');
    await ensureNamespace(kube, 'default');
    consul = await startConsulAgent({ nodeName: 'jibe-e2e-3p' });
    defer(() => consul.stop());

    // One control plane process for all three registries; its TLS API and TLS discovery on the LAN.
    const cpData = path.join(dir, 'cp');
    const [disc, discTls, apiPort, apiTls] = [await freePort(), await freePort(), await freePort(), await freePort()];
    api = `http://127.0.0.1:${apiPort}`;
    cp = start('control-plane', process.execPath, [
      JIBE, 'control-plane', '--data-dir', cpData, '--discovery-port', String(disc), '--discovery-tls-port', String(discTls),
      '--api-port', String(apiPort), '--api-tls-port', String(apiTls), '--api-tls-host', lan.hostAddress, '--advertise-address', `${lan.hostAddress}:${apiTls}`,
      '--platforms', 'vm,consul,kubernetes', '--config-store', 'file', '--consul-address', consul.address, '--kubeconfig', cluster.kubeconfigPath, '--webhook-port', 'off',
      '--log-level', 'warn',
    ]);
    await waitFor(async () => cp.child.exitCode === null ? (await fetch(`${api}/healthz`)).ok : Promise.reject(new Error(cp.output())), `the control plane\n${cp.output()}`, 60_000);
    admin = fs.readFileSync(path.join(cpData, 'admin-token'), 'utf8').trim();
    const discovery = ['--discovery', `${lan.hostAddress}:${discTls}`, '--discovery-tls'];
    const bootstrap = async (name: string, namespace: string, serviceAccount: string) => {
      const res = await fetch(`${api}/api/v1/bootstrap-tokens`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ namespace, serviceAccount, ttlSeconds: 3600 }) });
      const body = (await res.json()) as { token: string };
      assert.equal(res.status, 200, JSON.stringify(body));
      const file = path.join(dir, `${name}.token`);
      fs.writeFileSync(file, body.token, { mode: 0o600 });
      return file;
    };

    // Kubernetes pods: productpage, reviews v1, reviews v2.
    const podAddresses: Record<string, string> = {};
    for (const [i, name] of ['productpage-v1', 'reviews-v1', 'reviews-v2'].entries()) {
      const w = workload(name);
      const pod = await startVm(defer, lan, 10 + i);
      pods.set(name, pod);
      podAddresses[name] = pod.address;
      await ensureServiceAccount(kube, 'default', w.serviceAccount);
      await registerKubeWorkload({ server: cluster.server, kubeconfig: cluster.kubeconfigPath, podAddress: pod.address, client: kube }, {
        name, service: w.service, serviceAccount: w.serviceAccount, labels: { app: w.service, version: w.version, 'security.istio.io/tlsMode': 'istio' },
        servicePort: 9080, appPort: 9080, inboundPort: 15006,
      });
    }
    // What the kubelet would mount: the projected token (TokenRequest API, audience jibe) and the ConfigMap's roots.
    const roots = await waitFor(async () => {
      const cm = await kube.get<{ data?: Record<string, string> }>(kubePath('v1', 'configmaps', 'default', 'jibe-ca-root-cert'));
      return cm?.data?.['root-cert.pem'];
    }, 'the control plane to publish jibe-ca-root-cert in default', 30_000);
    for (const [name, pod] of pods) {
      const w = workload(name);
      const tokenFile = path.join(pod.dir, 'token');
      fs.writeFileSync(tokenFile, await serviceAccountToken(kube, 'default', w.serviceAccount, 'jibe'), { mode: 0o600 });
      fs.writeFileSync(path.join(pod.dir, 'root-cert.pem'), roots);
      start(`${name}-sidecar`, 'ip', [...inNs(pod.ns), JIBE, 'proxy', '--type', 'sidecar', '--platform', 'kubernetes', '--namespace', 'default', '--workload', name,
        '--service-account', w.serviceAccount, '--kube-token-file', tokenFile, '--ca-root-file', path.join(pod.dir, 'root-cert.pem'), '--api', `https://${lan.hostAddress}:${apiTls}`,
        ...discovery, '--outbound-port', '15001', '--admin-port', '15000', '--metrics-port', '15090', '--labels', `app=${w.service},version=${w.version}`]);
      start(name, 'ip', [...inNs(pod.ns), w.script, ...w.args, '--port', '9080', '--host', '127.0.0.1'], { HTTP_PROXY: 'http://127.0.0.1:15001', NODE_USE_ENV_PROXY: '1', NO_PROXY: '' });
    }

    // Consul: ratings, with its sidecar on the host at the LAN address.
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    const ratings = workload('ratings-v1');
    const { workload: ratingsWorkload } = await registerService(consul.client(), {
      service: 'ratings', id: 'ratings-v1', port: ports.ratingsApp, address: lan.hostAddress, protocol: 'http', namespace: 'default',
      tags: ['app=ratings', 'version=v1', 'security.istio.io/tlsMode=istio'], meta: { 'jibe-service-account': ratings.serviceAccount, 'jibe-service-port': '9080' },
      sidecar: { port: ports.ratingsInbound },
    });
    start('ratings-v1', process.execPath, [ratings.script, ...ratings.args, '--port', String(ports.ratingsApp), '--host', '127.0.0.1']);
    start('ratings-v1-sidecar', process.execPath, [JIBE, 'proxy', '--platform', 'consul', '--workload', ratingsWorkload, '--namespace', 'default', ...discovery,
      '--api', api, '--bootstrap-token-file', await bootstrap('ratings', 'default', ratings.serviceAccount), '--service-account', ratings.serviceAccount,
      '--outbound-port', String(ports.ratingsOutbound), '--admin-port', String(await freePort()), '--metrics-port', String(ports.ratingsMetrics), '--labels', 'app=ratings,version=v1']);

    // details: a ServiceEntry + WorkloadEntry, the app on the host's LAN address.
    const details = workload('details-v1');
    start('details-v1', process.execPath, [details.script, ...details.args, '--port', String(ports.detailsApp), '--host', lan.hostAddress]);
    await applyYaml(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: details, namespace: default }
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: details } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: details-v1, namespace: default }
spec:
  address: ${lan.hostAddress}
  ports: { http: ${ports.detailsApp} }
  labels: { app: details, version: v1 }
  serviceAccount: ${details.serviceAccount}
`);

    // The VM: reviews v3 behind capture, joined with a token; `ratings` resolves to an address only capture answers.
    vm = await startVm(defer, lan, 20, { hosts: { ratings: RATINGS_VIP } });
    const v3 = workload('reviews-v3');
    start('reviews-v3', 'ip', [...inNs(vm.ns), v3.script, ...v3.args, '--port', '9080', '--host', '0.0.0.0']);
    const mint = await fetch(`${api}/api/v1/vm/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'default', serviceAccount: v3.serviceAccount, uses: 1 }) });
    const { token } = (await mint.json()) as { token: string };
    assert.equal(mint.status, 200);
    agent = joinVm(defer, vm, token, ['--name', 'reviews-v3', '--service', 'reviews:9080', '--labels', 'app=reviews,version=v3', '--heartbeat', '500ms']);

    // The ingress gateway, on loopback.
    const gw = await freePort();
    gateway = `http://127.0.0.1:${gw}`;
    start('ingressgateway', process.execPath, [JIBE, 'proxy', '--type', 'gateway', '--namespace', 'jibe-system', '--labels', 'istio=ingressgateway', ...discovery,
      '--api', api, '--bootstrap-token-file', await bootstrap('ingressgateway', 'jibe-system', 'ingressgateway'), '--service-account', 'ingressgateway',
      '--admin-port', String(await freePort()), '--metrics-port', 'off', '--listener-address', '127.0.0.1', '--listener-port', `8080=${gw}`]);
    await applyYaml(fs.readFileSync(path.join(BOOKINFO_NETWORKING_DIR, 'bookinfo-gateway.yaml'), 'utf8'));
    await applyYaml(fs.readFileSync(path.join(BOOKINFO_NETWORKING_DIR, 'destination-rule-all.yaml'), 'utf8'));

    await waitFor(async () => (await fetchWorkloads()).find((w) => w.name === 'reviews-v3' && w.health === 'healthy'), 'the VM to join healthy', 90_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n--- agent\n${agent.output()}\n${logs()}`);
    });
    await waitFor(converged, 'every proxy to ACK', 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${logs()}`);
    });
  });

  after(async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  });

  const fetchWorkloads = async () => ((await (await fetch(`${api}/api/v1/workloads`)).json()) as { workloads: Workload[] }).workloads;

  it('knows each workload on its platform: reviews from Kubernetes and the VM, ratings from Consul, details from a WorkloadEntry', async () => {
    const all = await fetchWorkloads();
    const by = Object.fromEntries(all.map((w) => [w.name, w]));
    for (const name of ['productpage-v1', 'reviews-v1', 'reviews-v2']) {
      assert.equal(by[name]?.platform, 'kubernetes', `${name}: ${JSON.stringify(by[name])}`);
      assert.equal(by[name].address, pods.get(name)!.address);
      assert.equal(by[name].identity, `${TD}/${workload(name).serviceAccount}`);
    }
    assert.equal(by['reviews-v3']?.platform, 'vm');
    assert.equal(by['reviews-v3'].address, vm.address);
    assert.ok(all.some((w) => w.platform === 'consul' && w.labels.app === 'ratings'), JSON.stringify(all.map((w) => `${w.name} ${w.platform}`)));
    const capture = await vm.save();
    assert.match(capture, /-A JIBE_INBOUND -p tcp -m tcp --dport 9080 .*-j JIBE_IN_REDIRECT/, 'the VM captures its inbound port');
  });

  it('renders the whole page through the ingress gateway: details, reviews and ratings stars', async () => {
    const html = await waitFor(async () => {
      const h = await page();
      return servedBy(h) !== 'reviews-v1' && h.includes('&#9733;') ? h : undefined;
    }, `a page with stars\n${logs()}`, 60_000);
    assertWhole(html);
    const counts = await sample(30);
    assert.deepEqual(Object.keys(counts).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], `all versions across two platforms: ${JSON.stringify(counts)}`);
  });

  const split = async (k8s: number, vmWeight: number) => {
    await applyYaml(`
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
    await waitFor(converged, 'proxies to ACK the split');
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
    await applyYaml(`
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
    await waitFor(converged, 'proxies to ACK the header route');
    assert.deepEqual(await sample(15, 'jason'), { 'reviews-v3': 15 });
    assert.deepEqual(await sample(10), { 'reviews-v1': 10 });
  });

  it('secures every inter-proxy hop with mutual TLS, with the caller\'s identity', async () => {
    const seen = new Map<string, Set<string>>();
    for (const name of ['reviews-v1', 'reviews-v2']) hops(await metricsIn(pods.get(name)!.ns, 15090), seen);
    hops(await metricsIn(vm.ns, 15000), seen);
    hops((await (await fetch(`http://127.0.0.1:${ports.ratingsMetrics}/stats/prometheus`)).text()).split('\n'), seen);
    hops(await metricsIn(pods.get('productpage-v1')!.ns, 15090), seen);
    const dump = JSON.stringify(Object.fromEntries([...seen].map(([k, v]) => [k, [...v]])));
    assert.deepEqual([...(seen.get('productpage->reviews') ?? [])], [`mutual_tls ${TD}/bookinfo-productpage`], dump);
    assert.deepEqual([...(seen.get('reviews->ratings') ?? [])], [`mutual_tls ${TD}/bookinfo-reviews`], dump);
    // The gateway's hop into productpage too (productpage's inbound side reports it). details has no sidecar
    // (a WorkloadEntry for a plain app), so productpage→details is the one plaintext hop, and no inbound reports it.
    assert.ok([...seen.keys()].some((h) => h.endsWith('->productpage')), `the gateway→productpage hop: ${dump}`);
    for (const [hop, policies] of seen) for (const p of policies) assert.match(p, /^mutual_tls spiffe:\/\//, `${hop}: ${p} (${dump})`);
  });

  it('an AuthorizationPolicy allowing only productpage into reviews denies ratings\' sidecar (403) and keeps the page working', async () => {
    await applyYaml(`
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
    await waitFor(converged, 'proxies to ACK the policy');
    // ratings' app would call reviews through its sidecar's outbound port: do just that.
    const denials = async () => ({
      k8s: series(await metricsIn(pods.get('reviews-v2')!.ns, 15090), { source_app: 'ratings', response_code: '403', reporter: 'destination' }),
      vm: series(await metricsIn(vm.ns, 15000), { source_app: 'ratings', response_code: '403', reporter: 'destination' }),
    });
    const before = await denials();
    const statuses = new Set<number>();
    // 20 calls over a 50/50 split: both endpoints see some (all on one side: p = 2e-6).
    for (let i = 0; i < 20; i++) statuses.add(await viaProxy(ports.ratingsOutbound, 'http://reviews:9080/reviews/0'));
    assert.deepEqual([...statuses], [403]);
    const denied = await denials();
    assert.ok(denied.k8s > before.k8s && denied.vm > before.vm, `denied at the Kubernetes pod and at the VM alike: ${JSON.stringify({ before, denied })}`);
    const pages = await sample(10);
    assert.equal((pages['reviews-v2'] ?? 0) + (pages['reviews-v3'] ?? 0), 10, JSON.stringify(pages));
    assertWhole(await page());
  });

  it('jibe analyze on the live mesh reports no errors', async () => {
    const res = await runJibe(['analyze', '--server', api, '-o', 'json']);
    const report = JSON.parse(res.stdout) as { summary: { errors: number } };
    assert.equal(report.summary.errors, 0, res.stdout);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('keeps serving on last known config when Consul stops, then when the API server stops too', async () => {
    await consul.stop();
    // Let the registry notice (its watch fails) before judging.
    await new Promise((r) => setTimeout(r, 3000));
    for (let i = 0; i < 10; i++) assertWhole(await page());
    await cluster.stop();
    await new Promise((r) => setTimeout(r, 3000));
    for (let i = 0; i < 10; i++) assertWhole(await page());
    assert.equal(cp.child.exitCode, null, 'the control plane is still up');
  });
});
