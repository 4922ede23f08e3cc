// The Kubernetes platform against a real API server (etcd + kube-apiserver,
// no kubelet: the test plays it). Rules as CRDs checked by the validating
// webhook, pods injected by the mutating webhook (same result as kube-inject),
// services and slices becoming mesh endpoints, watches surviving an API
// server restart, service-account tokens proving identity, one leader of two.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import forge from 'node-forge';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { CsrSigningService } from '../../../core/ca/csr-signing-service.ts';
import type { RegistryEvent } from '../../../core/registry/platform-registry.ts';
import { FileStateStore } from '../../../core/state/state-store-file.ts';
import { AdmissionWebhookServer } from '../../../platforms/kubernetes/admission-webhook-server.ts';
import { KUBERNETES_TOKEN_TYPE, TokenReviewAuthenticator } from '../../../platforms/kubernetes/authenticator-token-review.ts';
import { KubernetesConfigStore } from '../../../platforms/kubernetes/config-store-kubernetes.ts';
import { DEFAULT_INJECTION, injectPod } from '../../../platforms/kubernetes/inject-pod.ts';
import { KubeApiError, kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubePod } from '../../../platforms/kubernetes/kube-types.ts';
import { LeaseLeaderElector } from '../../../platforms/kubernetes/leader-election-lease.ts';
import { KubernetesRegistry } from '../../../platforms/kubernetes/registry-kubernetes.ts';
import { clusterUnavailable, startTestCluster } from './kube-test-cluster.ts';
import type { TestCluster } from './kube-test-cluster.ts';
import { ensureNamespace, ensureServiceAccount, eventually, installCrds, serviceAccountToken } from './kube-setup.ts';

const TRUST_DOMAIN = 'cluster.local';
const problem = clusterUnavailable();

if (problem && process.env.CI === 'true') {
  it('the Kubernetes platform tests need the API server', () => assert.fail(problem));
} else if (problem) {
  it('Kubernetes platform', (t) => t.skip(problem));
} else {
  describe('Kubernetes platform against a real API server', () => {
    let cluster: TestCluster;
    let client: KubeClient;
    let dataDir: string;
    let state: FileStateStore;
    let ca: CertificateAuthority;
    let rules: KubernetesConfigStore;
    let webhook: AdmissionWebhookServer;
    const knownHosts = new Set(['reviews.shop.svc.cluster.local']);

    before(async () => {
      cluster = await startTestCluster();
      client = cluster.client();
      await installCrds(client);
      await ensureNamespace(client, 'shop', { 'jibe-injection': 'enabled' });
      await ensureNamespace(client, 'plain');
      dataDir = await mkdtemp(join(tmpdir(), 'jibe-kube-ca-'));
      state = await FileStateStore.open(dataDir);
      ca = await CertificateAuthority.open(state, { trustDomain: TRUST_DOMAIN });
      rules = await KubernetesConfigStore.open(client);
      webhook = new AdmissionWebhookServer({
        ca,
        spiffeId: `spiffe://${TRUST_DOMAIN}/ns/jibe-system/sa/jibe-control-plane`,
        serverNames: { dnsNames: ['jibe-control-plane.jibe-system.svc'], ipAddresses: ['127.0.0.1'] },
        injection: DEFAULT_INJECTION,
        namespaceLabels: async (ns) => (await client.get<{ metadata: { labels?: Record<string, string> } }>(kubePath('v1', 'namespaces', undefined, ns)))?.metadata.labels,
        rules: () => rules.list(),
        knownHosts: () => knownHosts,
      });
      const port = await webhook.listen('127.0.0.1', 0);
      const caBundle = Buffer.from(webhook.caBundle()).toString('base64');
      const base = `https://127.0.0.1:${port}`;
      await client.apply(kubePath('admissionregistration.k8s.io/v1', 'validatingwebhookconfigurations', undefined, 'jibe-validator'), {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: 'jibe-validator' },
        webhooks: [{
          name: 'validation.jibe.dev',
          clientConfig: { url: `${base}/validate`, caBundle },
          rules: [{ apiGroups: ['networking.jibe.dev', 'security.jibe.dev', 'jibe.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['*'] }],
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
        }],
      }, { fieldManager: 'jibe-test', force: true });
      await client.apply(kubePath('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'jibe-sidecar-injector'), {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'jibe-sidecar-injector' },
        webhooks: [{
          name: 'sidecar-injector.jibe.dev',
          clientConfig: { url: `${base}/inject`, caBundle },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          namespaceSelector: { matchExpressions: [{ key: 'jibe-injection', operator: 'In', values: ['enabled'] }] },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          reinvocationPolicy: 'Never',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
        }],
      }, { fieldManager: 'jibe-test', force: true });
    });

    after(async () => {
      await webhook?.close();
      await rules?.close();
      await state?.close();
      await cluster?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    const rulePath = (plural: string, name?: string) => kubePath('networking.jibe.dev/v1', plural, 'shop', name);
    const vs = (subset: string, weight = 100) => ({
      apiVersion: 'networking.jibe.dev/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'shop' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset }, weight }] }] },
    });

    it('CRDs are established and the API server itself rejects objects of the wrong shape', async () => {
      const err = await client.request('POST', rulePath('virtualservices'), { body: { ...vs('v1'), spec: { hosts: 'reviews' } } }).catch((e) => e);
      assert.ok(err instanceof KubeApiError, String(err));
      assert.equal(err.status, 422);
      assert.match(err.message, /spec\.hosts/);
    });

    it('the validating webhook runs full validation: a dangling subset is refused with the field named, a valid rule is accepted', async () => {
      const dr = { apiVersion: 'networking.jibe.dev/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'shop' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] } };
      await client.request('POST', rulePath('destinationrules'), { body: dr });
      const refused = await client.request('POST', rulePath('virtualservices'), { body: vs('v2') }).catch((e) => e);
      assert.ok(refused instanceof KubeApiError, String(refused));
      assert.match(refused.message, /denied the request/);
      assert.match(refused.message, /spec\.http\[0\]\.route\[0\]\.destination\.subset/);
      const weights = (await client.request('POST', rulePath('virtualservices'), { body: vs('v1', 40) }).catch((e) => e)) as Error;
      assert.match(String(weights.message), /spec\.http\[0\]/);
      await client.request('POST', rulePath('virtualservices'), { body: vs('v1') });
      await eventually(async () => (await rules.list('VirtualService')).length === 1, 'the store to see the rule');
      // Deleting the DestinationRule would leave the route's subset dangling.
      const del = await client.request('DELETE', rulePath('destinationrules', 'reviews')).catch((e) => e);
      assert.ok(del instanceof KubeApiError);
      assert.match(del.message, /dangling/);
    });

    it('a pod created in a labelled namespace comes back with the sidecar and init container, as kube-inject makes it', async () => {
      const pod: KubePod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'reviews-v1', namespace: 'shop', labels: { app: 'reviews', version: 'v1' } },
        spec: { containers: [{ name: 'reviews', image: 'reviews:v1', ports: [{ containerPort: 9080 }] }] },
      };
      const created = await client.request<KubePod>('POST', kubePath('v1', 'pods', 'shop'), { body: pod });
      assert.deepEqual(created.spec!.containers.map((c) => c.name), ['reviews', 'jibe-proxy']);
      assert.deepEqual(created.spec!.initContainers!.map((c) => c.name), ['jibe-init']);
      const offline = injectPod(pod as Required<KubePod>);
      assert.deepEqual(created.spec!.containers[1].args, offline.spec.containers[1].args);
      assert.deepEqual(created.spec!.initContainers![0].args, offline.spec.initContainers![0].args);
      assert.ok(created.spec!.volumes!.some((v) => v.name === 'jibe-token'));
      const plain = await client.request<KubePod>('POST', kubePath('v1', 'pods', 'plain'), { body: { ...pod, metadata: { ...pod.metadata, namespace: 'plain' } } });
      assert.deepEqual(plain.spec!.containers.map((c) => c.name), ['reviews']);
    });

    it('Services and EndpointSlices become mesh services and workloads; a watch survives an API server restart without losing an update', async () => {
      const registry = new KubernetesRegistry(client, { domain: 'cluster.local', trustDomain: TRUST_DOMAIN, reflector: { watchTimeoutSeconds: 30, minBackoffMs: 50, maxBackoffMs: 500 } });
      const batches: RegistryEvent[][] = [];
      const view = { services: new Map<string, unknown>(), workloads: new Map<string, { address: string; health: string; services: unknown[] }>() };
      await registry.watch((events) => {
        batches.push(events);
        for (const e of events) {
          if (e.kind === 'sync') {
            for (const s of e.services) view.services.set(s.hostname, s);
            for (const w of e.workloads) view.workloads.set(`${w.namespace}/${w.name}`, w);
          } else if (e.kind === 'service') {
            if (e.op === 'upsert') view.services.set(e.service.hostname, e.service);
            else view.services.delete(e.hostname);
          } else if (e.op === 'upsert') view.workloads.set(`${e.workload.namespace}/${e.workload.name}`, e.workload);
          else view.workloads.delete(`${e.namespace}/${e.name}`);
        }
      });
      try {
        assert.equal(batches[0][0].kind, 'sync');
        await client.request('POST', kubePath('v1', 'services', 'shop'), { body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ratings', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 9080 }] } } });
        // The API server refuses loopback endpoints; these stand for pod IPs (conversion only, no traffic here).
        const slice = (ready: boolean, address = '10.244.0.5') => ({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: 'ratings-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'ratings' } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: 19080, protocol: 'TCP' }],
          endpoints: [{ addresses: [address], conditions: { ready } }],
        });
        const slicePath = kubePath('discovery.k8s.io/v1', 'endpointslices', 'shop', 'ratings-1');
        await client.apply(slicePath, slice(true), { fieldManager: 'jibe-test' });
        const w = await eventually(() => view.workloads.get('shop/ratings-10-244-0-5'), 'the endpoint to appear');
        assert.ok(view.services.has('ratings.shop.svc.cluster.local'));
        assert.equal(w.health, 'healthy');
        assert.deepEqual(w.services, [{ hostname: 'ratings.shop.svc.cluster.local', ports: { 9080: 19080 } }]);

        // Restart the API server mid-watch; changes right before and right after must all arrive.
        await client.apply(slicePath, slice(false), { fieldManager: 'jibe-test' });
        await cluster.restartApiServer();
        await client.apply(slicePath, slice(true, '10.244.0.6'), { fieldManager: 'jibe-test' });
        await eventually(() => view.workloads.get('shop/ratings-10-244-0-6'), 'the update made after the restart');
        assert.equal(view.workloads.has('shop/ratings-10-244-0-5'), false, 'the replaced endpoint is gone');
        const sawUnhealthy = batches.flat().some((e) => e.kind === 'workload' && e.op === 'upsert' && e.workload.name === 'ratings-10-244-0-5' && e.workload.health === 'unhealthy');
        assert.ok(sawUnhealthy, 'the change made just before the restart was delivered');
        assert.ok(registry.stats().endpointslices.watches >= 2, 'the slice watch reconnected');
      } finally {
        await registry.stop();
      }
    });

    it("a pod's service-account token gets a certificate with its SPIFFE ID; another account's token gets that account's; a wrong audience gets none", async () => {
      await ensureServiceAccount(client, 'shop', 'bookinfo-reviews');
      await ensureServiceAccount(client, 'shop', 'bookinfo-ratings');
      const authenticator = new TokenReviewAuthenticator(client, { trustDomain: TRUST_DOMAIN });
      const signer = new CsrSigningService({ ca, authenticators: [authenticator] });
      const token = await serviceAccountToken(client, 'shop', 'bookinfo-reviews', 'jibe');
      const keys = forge.pki.rsa.generateKeyPair(2048);
      const csr = forge.pki.createCertificationRequest();
      csr.publicKey = keys.publicKey;
      csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: 'spiffe://cluster.local/ns/shop/sa/bookinfo-reviews' }] }] }]);
      csr.sign(keys.privateKey, forge.md.sha256.create());
      const signed = await signer.signWithCredential({ type: KUBERNETES_TOKEN_TYPE, token }, forge.pki.certificationRequestToPem(csr));
      const leaf = new X509Certificate(signed.certChainPem);
      assert.match(leaf.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/bookinfo-reviews/);
      const other = await authenticator.authenticate({ type: KUBERNETES_TOKEN_TYPE, token: await serviceAccountToken(client, 'shop', 'bookinfo-ratings', 'jibe') });
      assert.equal(other?.spiffeId, 'spiffe://cluster.local/ns/shop/sa/bookinfo-ratings');
      assert.equal(await authenticator.authenticate({ type: KUBERNETES_TOKEN_TYPE, token: await serviceAccountToken(client, 'shop', 'bookinfo-reviews', 'someone-else') }), undefined);
      assert.equal(await authenticator.authenticate({ type: KUBERNETES_TOKEN_TYPE, token: 'not-a-token' }), undefined);
      assert.equal(await authenticator.authenticate({ type: 'bootstrap-token', token }), undefined);
    });

    it('two control-plane replicas: exactly one leads; when it stops, the other takes over', async () => {
      await ensureNamespace(client, 'jibe-system');
      const leads = { a: 0, b: 0 };
      const make = (id: 'a' | 'b') =>
        new LeaseLeaderElector(client, { namespace: 'jibe-system', name: 'jibe-control-plane', identity: id, leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200, onStartedLeading: () => leads[id]++ });
      const a = make('a');
      const b = make('b');
      a.start();
      b.start();
      try {
        await eventually(() => a.isLeader || b.isLeader, 'a leader');
        await new Promise((r) => setTimeout(r, 800));
        assert.equal(Number(a.isLeader) + Number(b.isLeader), 1, 'exactly one leader');
        const [leader, follower] = a.isLeader ? [a, b] : [b, a];
        await leader.stop();
        await eventually(() => follower.isLeader, 'the follower to take over');
        assert.equal(leader.isLeader, false);
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });
}
