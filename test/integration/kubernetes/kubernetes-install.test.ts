// deploy/kubernetes against a real API server, through the `jibe` CLI:
// `check --pre` passes, every manifest passes server-side dry-run, `install`
// applies them and waits for the CRDs, the control plane's service account
// can do its job with exactly the RBAC installed (a control plane runs as it,
// publishing the CA roots ConfigMap into a labelled namespace) and no more, `check` passes once the webhooks answer (and fails, naming
// them, while the Deployments have no pods: no kubelet here), and
// `uninstall` removes everything but the CRDs.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningControlPlane } from '../../../core/control-plane.ts';
import { KubeApiError, kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import { installManifests } from '../../../platforms/kubernetes/kube-install.ts';
import { loadManifests } from '../../../platforms/kubernetes/kube-manifests.ts';
import { JIBE_WEBHOOK_CONFIGS, webhookConfigPath } from '../../../platforms/kubernetes/webhook-ca-bundle.ts';
import { caRootPem } from '../../../platforms/kubernetes/ca-root-configmap.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY } from '../../../platforms/kubernetes/inject-pod.ts';
import { freePort } from '../../../cli/up/ports.ts';
import { clusterUnavailable, startTestCluster } from './kube-test-cluster.ts';
import type { TestCluster } from './kube-test-cluster.ts';
import { eventually, serviceAccountToken } from './kube-setup.ts';
import { startTestControlPlane } from '../../helpers/control-plane.ts';
import { runJibeSourceCombined as jibe } from '../../helpers/jibe-cli.ts';

const problem = clusterUnavailable();

if (problem && process.env.CI === 'true') {
  it('the Kubernetes install tests need the API server', () => assert.fail(problem));
} else if (problem) {
  it('Kubernetes install', (t) => t.skip(problem));
} else {
  describe('jibe install / check / uninstall against a real API server', () => {
    let cluster: TestCluster;
    let admin: KubeClient;
    let kube: string[];
    let cp: RunningControlPlane | undefined;
    let dataDir: string;

    before(async () => {
      cluster = await startTestCluster();
      admin = cluster.client();
      kube = ['--kubeconfig', cluster.kubeconfigPath];
      dataDir = await mkdtemp(join(tmpdir(), 'jibe-kube-install-'));
    });

    after(async () => {
      await cp?.close();
      await cluster?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('jibe check --pre passes on an empty cluster', async () => {
      const { code, out } = await jibe(['check', '--pre', ...kube]);
      assert.equal(code, 0, out);
      assert.match(out, /✔ can reach the Kubernetes API/);
      assert.match(out, /✔ Kubernetes is at least 1\.28 \(v1\.34/);
      assert.match(out, /✔ can install Jibe/);
    });

    it('every manifest passes server-side dry-run', async () => {
      const objects = loadManifests();
      // Namespaced objects can be dry-run only into a namespace that exists.
      await admin.apply(kubePath('v1', 'namespaces', undefined, 'jibe-system'), objects[0], { fieldManager: 'jibe-install' });
      const lines: string[] = [];
      await installManifests(admin, objects, { dryRun: true, progress: (l) => lines.push(l) });
      assert.equal(lines.length, objects.length);
      assert.ok(lines.every((l) => l.startsWith('✔ valid (dry run)')));
      assert.equal(await admin.get(kubePath('apps/v1', 'deployments', 'jibe-system', 'jibe-control-plane')), undefined, 'a dry run creates nothing');
    });

    it('jibe install applies everything and waits for the CRDs to be established', async () => {
      const { code, out } = await jibe(['install', ...kube, '--wait=false', '--timeout', '60']);
      assert.equal(code, 0, out);
      assert.match(out, /✔ applied {2}Deployment jibe-system\/jibe-control-plane/);
      assert.match(out, /✔ applied {2}MutatingWebhookConfiguration jibe-sidecar-injector/);
      assert.match(out, /✔ CustomResourceDefinition virtualservices\.networking\.jibe\.dev established/);
      assert.ok(await admin.get(kubePath('apps/v1', 'deployments', 'jibe-system', 'jibe-ingressgateway')));
      // Installing again is an upgrade, not an error.
      const again = await jibe(['install', ...kube, '--wait=false']);
      assert.equal(again.code, 0, again.out);
    });

    it("the control plane's service account can run a control plane with the installed RBAC, and cannot read Secrets elsewhere", async () => {
      const token = await serviceAccountToken(admin, 'jibe-system', 'jibe-control-plane', 'https://kubernetes.default.svc.cluster.local');
      const asControlPlane = cluster.clientWithToken(token);
      const denied = await asControlPlane.request('GET', kubePath('v1', 'secrets', 'default')).catch((e) => e);
      assert.ok(denied instanceof KubeApiError && denied.status === 403, String(denied));
      const kubeconfig = join(dataDir, 'kubeconfig-cp');
      await writeFile(kubeconfig, JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 't', cluster: { server: cluster.server, 'certificate-authority-data': Buffer.from(cluster.caPem).toString('base64') } }],
        users: [{ name: 'cp', user: { token } }],
        contexts: [{ name: 't', context: { cluster: 't', user: 'cp' } }],
        'current-context': 't',
      }));
      // No kubelet runs the Deployment: this process is the replica, its webhook reached by URL instead of the Service.
      const webhookPort = await freePort();
      for (const ref of JIBE_WEBHOOK_CONFIGS) {
        const live = await admin.get<{ webhooks: Array<{ clientConfig: Record<string, unknown> }> }>(webhookConfigPath(ref));
        const ops = live!.webhooks.flatMap((w, i) => [
          { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
          { op: 'add', path: `/webhooks/${i}/clientConfig/url`, value: `https://127.0.0.1:${webhookPort}${(w.clientConfig.service as { path: string }).path}` },
        ]);
        await admin.request('PATCH', webhookConfigPath(ref), { body: ops, contentType: 'application/json-patch+json' });
      }
      cp = await startTestControlPlane({
        dataDir,
        configStore: 'kubernetes',
        stateStore: 'kubernetes',
        platforms: ['kubernetes', 'vm'],
        pluginOptions: { kubernetes: { kubeconfig, namespace: 'jibe-system', webhookPort, identity: 'replica-1', maintenanceIntervalMs: 500, lease: { durationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200 } } },
      });
      await eventually(async () => {
        for (const ref of JIBE_WEBHOOK_CONFIGS) {
          const live = await admin.get<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(webhookConfigPath(ref));
          if (!live!.webhooks.every((w) => w.clientConfig.caBundle)) return false;
        }
        return true;
      }, 'the control plane (as its service account) to publish the CA bundle');
      const lease = await admin.get<{ spec: { holderIdentity: string } }>(kubePath('coordination.k8s.io/v1', 'leases', 'jibe-system', 'jibe-control-plane'));
      assert.equal(lease?.spec.holderIdentity, 'replica-1');
    });

    it('with exactly that RBAC, the leader keeps jibe-ca-root-cert in a labelled namespace, and can touch no other ConfigMap there', async () => {
      await admin.apply(kubePath('v1', 'namespaces', undefined, 'shop'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'jibe-injection': 'enabled' } } }, { fieldManager: 'jibe-test' });
      const roots = caRootPem(cp!.ca.trustBundle());
      const published = await eventually(async () => (await admin.get<{ data?: Record<string, string> }>(kubePath('v1', 'configmaps', 'shop', CA_ROOT_CONFIGMAP)))?.data?.[CA_ROOT_KEY], 'the CA roots ConfigMap in shop');
      assert.equal(published, roots);
      // Updated, not only created: a stale copy is rewritten through the name-limited update.
      await admin.request('PUT', kubePath('v1', 'configmaps', 'shop', CA_ROOT_CONFIGMAP), { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CA_ROOT_CONFIGMAP, namespace: 'shop' }, data: { [CA_ROOT_KEY]: 'stale' } } });
      await eventually(async () => (await admin.get<{ data?: Record<string, string> }>(kubePath('v1', 'configmaps', 'shop', CA_ROOT_CONFIGMAP)))?.data?.[CA_ROOT_KEY] === roots, 'the stale copy to be rewritten');
      const token = await serviceAccountToken(admin, 'jibe-system', 'jibe-control-plane', 'https://kubernetes.default.svc.cluster.local');
      const asControlPlane = cluster.clientWithToken(token);
      await admin.request('POST', kubePath('v1', 'configmaps', 'shop'), { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-settings', namespace: 'shop' }, data: { a: '1' } } });
      for (const [method, path] of [['GET', kubePath('v1', 'configmaps', 'shop', 'app-settings')], ['GET', kubePath('v1', 'configmaps', 'shop')], ['PUT', kubePath('v1', 'configmaps', 'shop', 'app-settings')]] as const) {
        const denied = await asControlPlane.request(method, path, method === 'PUT' ? { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-settings', namespace: 'shop' }, data: { a: '2' } } } : {}).catch((e) => e);
        assert.ok(denied instanceof KubeApiError && denied.status === 403, `${method} ${path}: ${String(denied)}`);
      }
    });

    it('jibe check passes with the webhooks answering, and names the Deployments that have no pods', async () => {
      const skipped = await jibe(['check', ...kube, '--skip-workloads']);
      assert.equal(skipped.code, 0, skipped.out);
      assert.match(skipped.out, /✔ virtualservices\.networking\.jibe\.dev established/);
      assert.match(skipped.out, /✔ the control plane has the permissions it needs/);
      assert.match(skipped.out, /✔ sidecar-injector\.jibe\.dev is answering/);
      assert.match(skipped.out, /✔ validation\.jibe\.dev is answering/);
      assert.match(skipped.out, /✔ shop has the mesh roots \(jibe-ca-root-cert\)/);
      assert.match(skipped.out, /Status check results are ✔/);
      const full = await jibe(['check', ...kube]);
      assert.equal(full.code, 1, full.out);
      assert.match(full.out, /✘ Deployment jibe-system\/jibe-control-plane is available \(0\/2 replicas available/);
      assert.match(full.out, /hint: kubectl -n jibe-system describe deployment jibe-control-plane/);
    });

    it('jibe check names a labelled namespace without the CA roots; jibe uninstall removes what install applied and keeps the CRDs unless --crds', async () => {
      await cp?.close();
      cp = undefined;
      // No leader left to put it back: check names the namespace whose sidecars would lack the roots.
      await admin.request('DELETE', kubePath('v1', 'configmaps', 'shop', CA_ROOT_CONFIGMAP));
      const check = await jibe(['check', ...kube, '--skip-workloads']);
      assert.equal(check.code, 1, check.out);
      assert.match(check.out, /✘ shop has the mesh roots \(jibe-ca-root-cert\) \(missing\)/);
      const { code, out } = await jibe(['uninstall', ...kube]);
      assert.equal(code, 0, out);
      assert.match(out, /✔ deleted {2}Deployment jibe-system\/jibe-control-plane/);
      assert.match(out, /· kept {5}CustomResourceDefinition virtualservices\.networking\.jibe\.dev/);
      assert.equal(await admin.get(kubePath('apps/v1', 'deployments', 'jibe-system', 'jibe-control-plane')), undefined);
      assert.equal(await admin.get(webhookConfigPath(JIBE_WEBHOOK_CONFIGS[0])), undefined);
      assert.ok(await admin.get(kubePath('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, 'virtualservices.networking.jibe.dev')));
      const withCrds = await jibe(['uninstall', ...kube, '--crds']);
      assert.equal(withCrds.code, 0, withCrds.out);
      assert.match(withCrds.out, /✔ deleted {2}CustomResourceDefinition virtualservices\.networking\.jibe\.dev/);
    });
  });
}
