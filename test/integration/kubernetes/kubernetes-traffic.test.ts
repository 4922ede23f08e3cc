// Traffic to Kubernetes endpoints through a Jibe sidecar. The API server
// refuses loopback endpoint addresses, so each "pod" is a network namespace
// with its own address on a veth link, running a tiny HTTP server; the test
// plays the kubelet and the EndpointSlice controller. A control plane on the
// vm and kubernetes platforms feeds an in-process sidecar; a request through
// it reaches the pod's server, and when the slice moves to another pod, the
// traffic follows.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import { startProxy } from '../../../proxy/proxy.ts';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { clusterUnavailable, startTestCluster } from './kube-test-cluster.ts';
import type { TestCluster } from './kube-test-cluster.ts';
import { ensureNamespace, ensureServiceAccount, eventually } from './kube-setup.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const run = promisify(execFile);

function environmentProblem(): string | undefined {
  const cluster = clusterUnavailable();
  if (cluster) return cluster;
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (spawnSync('sh', ['-c', 'command -v ip']).status !== 0) return 'missing ip (Debian: apt-get install iproute2; node test/peers/install.ts iproute2)';
  return undefined;
}

interface FakePod {
  name: string;
  address: string;
  stop(): Promise<void>;
}

/** A network namespace with an address reachable from here, and an HTTP server answering with the pod's name. */
async function startPod(name: string, address: string): Promise<FakePod> {
  const tag = randomBytes(3).toString('hex');
  const ns = `jibe-kpod-${tag}`;
  const hostIf = `jk${tag}`;
  await run('ip', ['netns', 'add', ns]);
  const cleanup = async () => {
    await run('ip', ['link', 'del', hostIf]).catch(() => undefined);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  let app: ChildProcess | undefined;
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await run('ip', ['link', 'set', hostIf, 'up']);
    await run('ip', ['route', 'add', `${address}/32`, 'dev', hostIf]);
    await run('ip', ['-n', ns, 'addr', 'add', `${address}/32`, 'dev', 'eth0']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', ns, 'route', 'add', 'default', 'dev', 'eth0']);
    app = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e',
      `require('node:http').createServer((q, s) => s.end(${JSON.stringify(name)} + ' ' + q.url)).listen(9080, '0.0.0.0', () => console.log('ready'))`,
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    const started = app;
    await new Promise<void>((resolve, reject) => {
      started.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      started.once('exit', (code) => reject(new Error(`the app in ${ns} exited with ${code}`)));
    });
  } catch (err) {
    app?.kill();
    await cleanup();
    throw err;
  }
  const proc = app;
  return {
    name,
    address,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill();
        await exited;
      }
      await cleanup();
    },
  };
}

function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

const problem = environmentProblem();
if (problem && process.env.CI === 'true') {
  it('the Kubernetes traffic test needs the API server and network namespaces', () => assert.fail(problem));
} else if (problem) {
  it('Kubernetes traffic', (t) => t.skip(problem));
} else {
  describe('traffic through a sidecar to Kubernetes endpoints', () => {
    let cluster: TestCluster;
    let client: KubeClient;
    let dataDir: string;
    let cp: RunningControlPlane;
    let proxy: RunningProxy;
    const pods: FakePod[] = [];
    // TEST-NET-3, a random pair per run so parallel runs on one host do not share routes.
    const base = randomInt(2, 120) * 2;

    const slice = (pod: FakePod) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'ratings-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'ratings' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
      endpoints: [{ addresses: [pod.address], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'shop', name: pod.name } }],
    });
    const slicePath = kubePath('discovery.k8s.io/v1', 'endpointslices', 'shop', 'ratings-abc');

    before(async () => {
      cluster = await startTestCluster();
      client = cluster.client();
      await ensureNamespace(client, 'shop');
      await ensureNamespace(client, 'jibe-system');
      await ensureServiceAccount(client, 'shop', 'ratings');
      pods.push(await startPod('ratings-v1-0', `203.0.113.${base}`), await startPod('ratings-v1-1', `203.0.113.${base + 1}`));
      for (const pod of pods) {
        await client.request('POST', kubePath('v1', 'pods', 'shop'), {
          body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod.name, namespace: 'shop', labels: { app: 'ratings', version: 'v1' } }, spec: { serviceAccountName: 'ratings', containers: [{ name: 'ratings', image: 'ratings:v1', ports: [{ containerPort: 9080 }] }] } },
        });
      }
      await client.request('POST', kubePath('v1', 'services', 'shop'), {
        body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ratings', namespace: 'shop' }, spec: { selector: { app: 'ratings' }, ports: [{ name: 'http', port: 9080 }] } },
      });
      await client.apply(slicePath, slice(pods[0]), { fieldManager: 'jibe-test' });

      dataDir = await mkdtemp(join(tmpdir(), 'jibe-kube-traffic-'));
      cp = await startTestControlPlane({
        dataDir,
        platforms: ['vm', 'kubernetes'],
        pluginOptions: { kubernetes: { kubeconfig: cluster.kubeconfigPath, namespace: 'jibe-system' } },
      });
      // The calling workload: a registered VM workload whose sidecar runs here.
      const put = await fetch(`http://127.0.0.1:${cp.ports.api}/api/v1/workloads`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'productpage', namespace: 'shop', address: '127.0.0.1', labels: { app: 'productpage' }, services: [{ name: 'productpage', port: 9081 }] }),
      });
      assert.equal(put.status, 200, await put.text());
      proxy = await startProxy({
        node: { id: 'sidecar~productpage.shop', type: 'sidecar', namespace: 'shop', workload: 'productpage', platform: 'vm', labels: { app: 'productpage' } },
        discoveryAddress: `127.0.0.1:${cp.ports.discovery}`,
        outboundPort: 0,
        adminPort: 0,
        metricsPort: undefined,
        logger: pino({ level: 'silent' }),
        drainTimeoutMs: 200,
      });
    });

    after(async () => {
      await proxy?.close();
      await cp?.close();
      for (const pod of pods) await pod.stop();
      await cluster?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it("the pod behind the slice is a mesh workload with its service account's identity, and a request through the sidecar reaches its server", async () => {
      const workload = await eventually(() => cp.mesh.snapshot().workloads.find((w) => w.platform === 'kubernetes' && w.address === pods[0].address), 'the pod in the mesh');
      assert.equal(workload.serviceAccount, 'ratings');
      assert.equal(workload.labels.version, 'v1');
      const reply = await eventually(async () => {
        const r = await get(proxy.ports.outbound!, 'ratings.shop.svc.cluster.local:9080', '/ratings/0');
        return r.status === 200 ? r : undefined;
      }, 'an answer through the sidecar');
      assert.equal(reply.body, 'ratings-v1-0 /ratings/0');
    });

    it('when the EndpointSlice moves to another pod, the traffic follows', async () => {
      await client.apply(slicePath, slice(pods[1]), { fieldManager: 'jibe-test' });
      await eventually(async () => (await get(proxy.ports.outbound!, 'ratings.shop.svc.cluster.local:9080', '/ratings/1')).body === 'ratings-v1-1 /ratings/1', 'traffic to the new pod', 10_000);
      // And only there: the old endpoint is gone from the sidecar's config.
      for (let i = 0; i < 5; i++) assert.equal((await get(proxy.ports.outbound!, 'ratings.shop.svc.cluster.local:9080', '/x')).body, 'ratings-v1-1 /x');
    });
  });
}
