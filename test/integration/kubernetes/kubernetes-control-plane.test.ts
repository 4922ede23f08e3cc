// Two control-plane replicas on the kubernetes platform and stores, against a
// real API server: one leads (the Lease says who), the leader publishes the CA
// bundle into the webhook configurations so the API server reaches the
// webhook (a pod comes back injected, a bad rule is refused), a root rotation
// reaches the caBundle and the webhook's certificate, the leader keeps the
// mesh roots in each meshed namespace's jibe-ca-root-cert ConfigMap (labelled,
// or holding sidecar pods; rotated roots included), a service-account token
// buys a certificate through the control plane's TLS API verified with that
// ConfigMap (in process, and through `jibe proxy`), and when the leader stops,
// the other replica takes over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { IdentityManager } from '../../../proxy/identity/identity-manager.ts';
import { identityFromToken } from '../../../proxy/identity/identity-source.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, CA_ROOT_MOUNT_PATH, injectPod } from '../../../platforms/kubernetes/inject-pod.ts';
import { caRootPem } from '../../../platforms/kubernetes/ca-root-configmap.ts';
import { KUBERNETES_TOKEN_TYPE } from '../../../platforms/kubernetes/authenticator-token-review.ts';
import { KubeApiError, kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubePod } from '../../../platforms/kubernetes/kube-types.ts';
import { JIBE_WEBHOOK_CONFIGS, webhookConfigPath } from '../../../platforms/kubernetes/webhook-ca-bundle.ts';
import { freePort } from '../../../cli/up/ports.ts';
import { clusterUnavailable, startTestCluster } from './kube-test-cluster.ts';
import type { TestCluster } from './kube-test-cluster.ts';
import { ensureNamespace, ensureServiceAccount, eventually, installCrds, serviceAccountToken } from './kube-setup.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';

const problem = clusterUnavailable();
const JIBE = fileURLToPath(new URL('../../../cli/jibe.ts', import.meta.url));
const CONTROL_PLANE_ID = 'spiffe://cluster.local/ns/jibe-system/sa/jibe-control-plane';

if (problem && process.env.CI === 'true') {
  it('the Kubernetes control-plane tests need the API server', () => assert.fail(problem));
} else if (problem) {
  it('Kubernetes control plane', (t) => t.skip(problem));
} else {
  describe('control-plane replicas on the kubernetes platform', () => {
    let cluster: TestCluster;
    let client: KubeClient;
    const dirs: string[] = [];
    const planes = new Map<string, RunningControlPlane>();
    let webhookPort: number;

    const start = async (identity: string, port: number) => {
      const dataDir = await mkdtemp(join(tmpdir(), `jibe-kube-cp-${identity}-`));
      dirs.push(dataDir);
      const cp = await startTestControlPlane({
        dataDir,
        apiTlsPort: 0,
        discoveryTlsPort: 0,
        configStore: 'kubernetes',
        stateStore: 'kubernetes',
        platforms: ['vm', 'kubernetes'],
        pluginOptions: {
          kubernetes: { kubeconfig: cluster.kubeconfigPath, namespace: 'jibe-system', webhookPort: port, identity, maintenanceIntervalMs: 300, lease: { durationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200 } },
        },
      });
      planes.set(identity, cp);
      return cp;
    };
    const holder = async () => (await client.get<{ spec?: { holderIdentity?: string } }>(kubePath('coordination.k8s.io/v1', 'leases', 'jibe-system', 'jibe-control-plane')))?.spec?.holderIdentity;
    const caRootOf = async (namespace: string) => (await client.get<{ data?: Record<string, string> }>(kubePath('v1', 'configmaps', namespace, CA_ROOT_CONFIGMAP)))?.data?.[CA_ROOT_KEY];
    const caBundles = async () =>
      Promise.all(JIBE_WEBHOOK_CONFIGS.map(async (ref) => (await client.get<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(webhookConfigPath(ref)))!.webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString())));

    before(async () => {
      cluster = await startTestCluster();
      client = cluster.client();
      await installCrds(client);
      await ensureNamespace(client, 'jibe-system');
      await ensureNamespace(client, 'shop', { 'jibe-injection': 'enabled' });
      webhookPort = await freePort();
      // As deploy/kubernetes has them, but with a url (the webhook runs here) and no caBundle: the leader fills it in.
      const base = `https://127.0.0.1:${webhookPort}`;
      await client.apply(webhookConfigPath(JIBE_WEBHOOK_CONFIGS[0]), {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: JIBE_WEBHOOK_CONFIGS[0].name },
        webhooks: [{
          name: 'sidecar-injector.jibe.dev',
          clientConfig: { url: `${base}/inject` },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          namespaceSelector: { matchLabels: { 'jibe-injection': 'enabled' } },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
        }],
      }, { fieldManager: 'jibe-test', force: true });
      await client.apply(webhookConfigPath(JIBE_WEBHOOK_CONFIGS[1]), {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: JIBE_WEBHOOK_CONFIGS[1].name },
        webhooks: [{
          name: 'validation.jibe.dev',
          clientConfig: { url: `${base}/validate` },
          rules: [{ apiGroups: ['networking.jibe.dev', 'security.jibe.dev', 'jibe.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['*'] }],
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
        }],
      }, { fieldManager: 'jibe-test', force: true });
      // Sequential: both replicas racing for the first CA root is the CA's own test; here they share one.
      await start('cp-a', webhookPort);
      await start('cp-b', 0);
    });

    after(async () => {
      for (const cp of planes.values()) await cp.close().catch(() => undefined);
      await cluster?.stop();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    it('exactly one replica holds the Lease, and both serve the webhook', async () => {
      const leader = await eventually(holder, 'a leader');
      assert.ok(['cp-a', 'cp-b'].includes(leader));
      assert.equal(planes.get('cp-a')!.addonPorts.webhook, webhookPort);
      assert.ok(planes.get('cp-b')!.addonPorts.webhook > 0);
    });

    it('the leader publishes the CA bundle; the API server then reaches the webhook: pods are injected, bad rules refused', async () => {
      const roots = planes.get('cp-a')!.ca.trustBundle().join('');
      await eventually(async () => (await caBundles()).flat().every((b) => b === roots), 'the caBundle in both configurations');
      const pod = await client.request<KubePod>('POST', kubePath('v1', 'pods', 'shop'), {
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web:1' }] } },
      });
      assert.deepEqual(pod.spec!.containers.map((c) => c.name), ['web', 'jibe-proxy']);
      const refused = await client.request('POST', kubePath('networking.jibe.dev/v1', 'virtualservices', 'shop'), {
        body: { apiVersion: 'networking.jibe.dev/v1', kind: 'VirtualService', metadata: { name: 'web', namespace: 'shop' }, spec: { hosts: ['web'], http: [{ route: [{ destination: { host: 'web', subset: 'nope' } }] }] } },
      }).catch((e) => e);
      assert.ok(refused instanceof KubeApiError, String(refused));
      assert.match(refused.message, /spec\.http\[0\]\.route\[0\]\.destination\.host/);
    });

    it('the injected pod mounts the jibe-ca-root-cert ConfigMap and its sidecar trades its token over https only', async () => {
      const pod = await client.get<KubePod>(kubePath('v1', 'pods', 'shop', 'web'));
      const proxy = pod!.spec!.containers.find((c) => c.name === 'jibe-proxy')!;
      const args = proxy.args!;
      assert.equal(args[args.indexOf('--api') + 1], 'https://jibe-control-plane.jibe-system.svc:15015');
      assert.equal(args[args.indexOf('--ca-root-file') + 1], `${CA_ROOT_MOUNT_PATH}/${CA_ROOT_KEY}`);
      assert.ok(!args.some((a) => a.startsWith('http://')), args.join(' '));
      assert.ok((proxy.volumeMounts as Array<{ mountPath: string }>).some((m) => m.mountPath === CA_ROOT_MOUNT_PATH));
      assert.ok(pod!.spec!.volumes!.some((v) => (v.configMap as { name?: string } | undefined)?.name === CA_ROOT_CONFIGMAP));
    });

    it('the leader publishes the mesh roots into labelled namespaces and namespaces with sidecar pods, not elsewhere', async () => {
      const roots = caRootPem(planes.get('cp-a')!.ca.trustBundle());
      assert.equal(await eventually(() => caRootOf('shop'), 'the ConfigMap in the labelled namespace'), roots);
      // Labelled after the control plane started: the namespace event brings it.
      await ensureNamespace(client, 'late', { 'jibe-injection': 'enabled' });
      assert.equal(await eventually(() => caRootOf('late'), 'the ConfigMap in a namespace labelled later'), roots);
      // Not labelled, but a pod injected offline (kube-inject) runs there.
      await ensureNamespace(client, 'offline');
      await ensureNamespace(client, 'plain');
      const injected = injectPod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'batch', namespace: 'offline' }, spec: { containers: [{ name: 'batch', image: 'batch:1' }] } });
      await client.request('POST', kubePath('v1', 'pods', 'offline'), { body: injected });
      assert.equal(await eventually(() => caRootOf('offline'), 'the ConfigMap where a sidecar pod runs'), roots);
      assert.equal(await caRootOf('plain'), undefined, 'a namespace without sidecars gets none');
      // Deleted by hand: the leader's next round puts it back.
      await client.request('DELETE', kubePath('v1', 'configmaps', 'late', CA_ROOT_CONFIGMAP));
      assert.equal(await eventually(() => caRootOf('late'), 'the deleted ConfigMap to come back'), roots);
    });

    it("a pod's service-account token buys a certificate with its SPIFFE ID through the control plane's API", async () => {
      await ensureServiceAccount(client, 'shop', 'web');
      const token = await serviceAccountToken(client, 'shop', 'web', 'jibe');
      const manager = new IdentityManager({
        apiBase: `http://127.0.0.1:${planes.get('cp-b')!.ports.api}`,
        spiffeId: 'spiffe://cluster.local/ns/shop/sa/web',
        credential: async () => ({ type: KUBERNETES_TOKEN_TYPE, token }),
      });
      try {
        const cert = await manager.start();
        assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
      } finally {
        manager.stop();
      }
      const other = new IdentityManager({
        apiBase: `http://127.0.0.1:${planes.get('cp-b')!.ports.api}`,
        spiffeId: 'spiffe://cluster.local/ns/shop/sa/admin',
        credential: async () => ({ type: KUBERNETES_TOKEN_TYPE, token }),
      });
      await assert.rejects(other.start());
      other.stop();
    });

    it("jibe proxy's identity: the token goes over TLS to the API, verified with the ConfigMap's roots and the control plane's SPIFFE ID", async () => {
      const dir = await mkdtemp(join(tmpdir(), 'jibe-kube-token-'));
      dirs.push(dir);
      const tokenFile = join(dir, 'token');
      const rootsFile = join(dir, 'root-cert.pem');
      await writeFile(tokenFile, await serviceAccountToken(client, 'shop', 'web', 'jibe'));
      // What the kubelet would mount from the ConfigMap.
      await writeFile(rootsFile, (await caRootOf('shop'))!);
      const apiBase = `https://127.0.0.1:${planes.get('cp-b')!.ports.apiTls}`;
      const base = { tokenFile, credentialType: KUBERNETES_TOKEN_TYPE, apiBase, spiffeId: 'spiffe://cluster.local/ns/shop/sa/web', logger: pino({ level: 'silent' }) };
      const running = await identityFromToken({ ...base, tls: { caRootFile: rootsFile, serverSpiffeId: CONTROL_PLANE_ID } });
      try {
        assert.equal(running.identity.certificate.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
      } finally {
        running.stop();
      }
      // The server must be the control plane, chained to the pinned roots.
      await assert.rejects(identityFromToken({ ...base, tls: { caRootFile: rootsFile, serverSpiffeId: 'spiffe://cluster.local/ns/shop/sa/impostor' } }), /is spiffe:\/\/cluster\.local\/ns\/jibe-system\/sa\/jibe-control-plane, not spiffe:\/\/cluster\.local\/ns\/shop\/sa\/impostor/);
      const otherRoots = join(dir, 'other-root.pem');
      // The API server's CA: a real root, just not the mesh's.
      await writeFile(otherRoots, cluster.caPem);
      await assert.rejects(identityFromToken({ ...base, tls: { caRootFile: otherRoots, serverSpiffeId: CONTROL_PLANE_ID } }), /certificate/i);
    });

    it('jibe proxy --kube-token-file --api https://… --ca-root-file … obtains its certificate and starts; http:// off loopback is refused', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'jibe-kube-proxy-'));
      dirs.push(dir);
      const tokenFile = join(dir, 'token');
      const rootsFile = join(dir, 'root-cert.pem');
      await writeFile(tokenFile, await serviceAccountToken(client, 'shop', 'web', 'jibe'));
      await writeFile(rootsFile, (await caRootOf('shop'))!);
      const b = planes.get('cp-b')!;
      const args = [
        'proxy', '--type', 'sidecar', '--platform', 'kubernetes', '--namespace', 'shop', '--workload', 'web', '--service-account', 'web',
        '--kube-token-file', tokenFile, '--api', `https://127.0.0.1:${b.ports.apiTls}`, '--ca-root-file', rootsFile,
        '--discovery', `127.0.0.1:${b.ports.discoveryTls}`, '--discovery-tls',
        '--outbound-port', String(await freePort()), '--admin-port', String(await freePort()), '--metrics-port', 'off',
      ];
      const child = spawn(process.execPath, [JIBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        await eventually(() => out.includes('"proxy started"') || child.exitCode !== null, 'jibe proxy to start', 30_000);
        assert.match(out, /"proxy started"/, out);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      const refused = spawn(process.execPath, [JIBE, ...args.map((a) => (a.startsWith('https://127.0.0.1') ? 'http://192.0.2.10:15014' : a))], { stdio: ['ignore', 'pipe', 'pipe'] });
      let refusedOut = '';
      refused.stderr.on('data', (c: Buffer) => (refusedOut += c.toString()));
      const code = await new Promise<number | null>((resolve) => refused.on('exit', (c) => resolve(c)));
      assert.equal(code, 1, refusedOut);
      assert.match(refusedOut, /JIBE_ERR_INSECURE_API.*plaintext to 192\.0\.2\.10:15014/);
    });

    it('a root rotation reaches the caBundle (old and new roots) and the webhook still answers with a certificate of the new root', async () => {
      const a = planes.get('cp-a')!;
      const before = a.ca.trustBundle();
      await a.ca.rotateRoot({ overlapMs: 48 * 3600_000 });
      const after = a.ca.trustBundle();
      assert.equal(after.length, before.length + 1);
      await eventually(async () => (await caBundles()).flat().every((b) => b === after.join('')), 'the rotated bundle in the configurations');
      // The ConfigMaps carry both roots during the overlap, so sidecars on either chain verify the control plane.
      for (const ns of ['shop', 'late', 'offline']) await eventually(async () => (await caRootOf(ns)) === caRootPem(after), `both roots in ${ns}'s ConfigMap`);
      await eventually(() => planes.get('cp-b')!.ca.trustBundle().length === after.length, 'the other replica to re-read the roots');
      const pod = await client.request<KubePod>('POST', kubePath('v1', 'pods', 'shop'), {
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-2', namespace: 'shop' }, spec: { containers: [{ name: 'web', image: 'web:1' }] } },
      });
      assert.ok(pod.spec!.containers.some((c) => c.name === 'jibe-proxy'));
    });

    it('when the leader stops, the other replica takes over the Lease', async () => {
      const leader = (await holder())!;
      const other = leader === 'cp-a' ? 'cp-b' : 'cp-a';
      await planes.get(leader)!.close();
      planes.delete(leader);
      await eventually(async () => (await holder()) === other, 'the other replica to lead', 10_000);
    });
  });
}
