// Two control-plane replicas on the kubernetes platform and stores, against a
// real API server: one leads (the Lease says who), the leader publishes the CA
// bundle into the webhook configurations so the API server reaches the
// webhook (a pod comes back injected, a bad rule is refused), a root rotation
// reaches the caBundle and the webhook's certificate, a service-account token
// buys a certificate through the control plane's API, and when the leader
// stops, the other replica takes over.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { registerPlugins } from '../../../cli/plugins.ts';
import { startControlPlane } from '../../../core/control-plane.ts';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../../core/mesh/mesh-snapshot.ts';
import { IdentityManager } from '../../../proxy/identity/identity-manager.ts';
import { KUBERNETES_TOKEN_TYPE } from '../../../platforms/kubernetes/authenticator-token-review.ts';
import { KubeApiError, kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubePod } from '../../../platforms/kubernetes/kube-types.ts';
import { JIBE_WEBHOOK_CONFIGS, webhookConfigPath } from '../../../platforms/kubernetes/webhook-ca-bundle.ts';
import { clusterUnavailable, freePort, startTestCluster } from './kube-test-cluster.ts';
import type { TestCluster } from './kube-test-cluster.ts';
import { ensureNamespace, ensureServiceAccount, eventually, installCrds, serviceAccountToken } from './kube-setup.ts';

const problem = clusterUnavailable();

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
      const cp = await startControlPlane({
        container: registerPlugins(),
        dataDir,
        settings: DEFAULT_MESH_SETTINGS,
        host: '127.0.0.1',
        discoveryPort: 0,
        apiPort: 0,
        configStore: 'kubernetes',
        stateStore: 'kubernetes',
        platforms: ['vm', 'kubernetes'],
        pluginOptions: {
          kubernetes: { kubeconfig: cluster.kubeconfigPath, namespace: 'jibe-system', webhookPort: port, identity, maintenanceIntervalMs: 300, lease: { durationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200 } },
        },
        logger: pino({ level: 'silent' }),
      });
      planes.set(identity, cp);
      return cp;
    };
    const holder = async () => (await client.get<{ spec?: { holderIdentity?: string } }>(kubePath('coordination.k8s.io/v1', 'leases', 'jibe-system', 'jibe-control-plane')))?.spec?.holderIdentity;
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

    it('a root rotation reaches the caBundle (old and new roots) and the webhook still answers with a certificate of the new root', async () => {
      const a = planes.get('cp-a')!;
      const before = a.ca.trustBundle();
      await a.ca.rotateRoot({ overlapMs: 48 * 3600_000 });
      const after = a.ca.trustBundle();
      assert.equal(after.length, before.length + 1);
      await eventually(async () => (await caBundles()).flat().every((b) => b === after.join('')), 'the rotated bundle in the configurations');
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
