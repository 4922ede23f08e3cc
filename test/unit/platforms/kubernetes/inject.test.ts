// Sidecar injection: the pure template rewrite, the manifest walker behind
// `jibe kube-inject`, and the mutating webhook's JSON Patch, which must give
// the same pod as the offline path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, CA_ROOT_MOUNT_PATH, CA_ROOT_VOLUME, DEFAULT_INJECTION, INIT_CONTAINER, injectPod, wantsInjection } from '../../../../platforms/kubernetes/inject-pod.ts';
import { injectManifest } from '../../../../platforms/kubernetes/inject-manifest.ts';
import { mutatePodReview } from '../../../../platforms/kubernetes/admission-review.ts';
import type { KubePod } from '../../../../platforms/kubernetes/kube-types.ts';

const pod = (): KubePod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'reviews', namespace: 'bookinfo', labels: { app: 'reviews' } },
  spec: { containers: [{ name: 'reviews', image: 'reviews:v1', ports: [{ containerPort: 9080 }] }] },
});

/** RFC 6902 add/replace on plain JSON, enough for the webhook's patches. */
function applyPatch(doc: unknown, patch: Array<{ op: string; path: string; value: unknown }>): unknown {
  const out = structuredClone(doc) as Record<string, unknown>;
  for (const op of patch) {
    assert.ok(op.op === 'add' || op.op === 'replace', op.op);
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node = out as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
    const last = parts[parts.length - 1];
    if (op.op === 'replace') assert.ok(last in node, `replace of missing ${op.path}`);
    node[last] = op.value;
  }
  return out;
}

test('injection adds the proxy, the capture init container and the token volume; twice is the same as once', () => {
  const injected = injectPod(pod() as Required<KubePod>);
  const spec = injected.spec;
  assert.deepEqual(spec.containers.map((c) => c.name), ['reviews', 'jibe-proxy']);
  assert.deepEqual(spec.initContainers?.map((c) => c.name), [INIT_CONTAINER]);
  assert.deepEqual(spec.initContainers?.[0].args?.slice(0, 2), ['capture', 'apply']);
  assert.ok(spec.volumes?.some((v) => v.name === 'jibe-token' && JSON.stringify(v).includes('"audience":"jibe"')));
  assert.equal((spec.containers[1].securityContext as { runAsUser: number }).runAsUser, 1337);
  assert.equal(injected.metadata.annotations?.['kubectl.kubernetes.io/default-container'], 'reviews');
  assert.equal(injectPod(injected), injected, 'an injected pod is returned untouched');
  assert.equal(pod().spec!.containers.length, 1, 'the input is not mutated');
});

test('who gets a sidecar: pod opt-in/out beats the namespace label; offline injects unless opted out; host network never', () => {
  assert.equal(wantsInjection({}, { 'jibe-injection': 'enabled' }), true);
  assert.equal(wantsInjection({}, {}), false);
  assert.equal(wantsInjection({ annotations: { 'sidecar.jibe.dev/inject': 'false' } }, { 'jibe-injection': 'enabled' }), false);
  assert.equal(wantsInjection({ labels: { 'sidecar.istio.io/inject': 'true' } }, {}), true);
  assert.equal(wantsInjection({}, undefined), true);
  assert.equal(wantsInjection({}, { 'jibe-injection': 'enabled' }, { containers: [], hostNetwork: true }), false);
});

test('kube-inject rewrites every pod template in a manifest and leaves other documents alone; its output is stable', () => {
  const manifest = `
apiVersion: v1
kind: Service
metadata: { name: reviews }
spec: { ports: [{ port: 9080, name: http }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: reviews-v1 }
spec:
  selector: { matchLabels: { app: reviews } }
  template:
    metadata: { labels: { app: reviews } }
    spec: { containers: [{ name: reviews, image: reviews:v1 }] }
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: cleanup }
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata: { annotations: { sidecar.jibe.dev/inject: "false" } }
        spec: { restartPolicy: Never, containers: [{ name: c, image: busybox }] }
`;
  const first = injectManifest(manifest, DEFAULT_INJECTION);
  assert.deepEqual(first.injected, ['Deployment/reviews-v1']);
  const docs = parseAllDocuments(first.yaml).map((d) => d.toJSON());
  assert.equal(docs.length, 3);
  assert.deepEqual(docs[0].spec, { ports: [{ port: 9080, name: 'http' }] });
  assert.deepEqual(docs[1].spec.template.spec.containers.map((c: { name: string }) => c.name), ['reviews', 'jibe-proxy']);
  assert.equal(docs[2].spec.jobTemplate.spec.template.spec.containers.length, 1);
  const second = injectManifest(first.yaml, DEFAULT_INJECTION);
  assert.deepEqual(second.injected, []);
  assert.equal(second.yaml, first.yaml);
});

test('the webhook patch gives the same pod as offline injection; already injected or opted-out pods get no patch', () => {
  const request = { uid: 'u1', operation: 'CREATE' as const, namespace: 'bookinfo', object: pod() as unknown as Record<string, unknown> };
  const review = mutatePodReview(request, { 'jibe-injection': 'enabled' }, DEFAULT_INJECTION);
  assert.equal(review.response?.allowed, true);
  assert.equal(review.response?.uid, 'u1');
  const patched = applyPatch(pod(), JSON.parse(Buffer.from(review.response!.patch!, 'base64').toString()));
  assert.deepEqual(patched, injectPod(pod() as Required<KubePod>));
  const again = mutatePodReview({ ...request, object: patched as Record<string, unknown> }, { 'jibe-injection': 'enabled' }, DEFAULT_INJECTION);
  assert.equal(again.response?.patch, undefined);
  assert.equal(mutatePodReview(request, {}, DEFAULT_INJECTION).response?.patch, undefined);
});

test('the sidecar proves its identity with the projected token (audience jibe) and is ready only once configured', () => {
  const out = injectPod(pod() as Required<KubePod>, DEFAULT_INJECTION);
  const proxy = out.spec.containers.find((c) => c.name === 'jibe-proxy')!;
  const args = proxy.args!;
  const tokenFile = args[args.indexOf('--kube-token-file') + 1];
  const mounts = proxy.volumeMounts as Array<{ name: string; mountPath: string }>;
  const tokenMount = mounts.find((m) => m.name === 'jibe-token')!;
  assert.equal(tokenFile, `${tokenMount.mountPath}/token`);
  const volume = out.spec.volumes!.find((v) => v.name === 'jibe-token') as unknown as { projected: { sources: Array<{ serviceAccountToken: { audience: string; path: string } }> } };
  assert.deepEqual([volume.projected.sources[0].serviceAccountToken.audience, volume.projected.sources[0].serviceAccountToken.path], ['jibe', 'token']);
  assert.equal(args[args.indexOf('--service-account') + 1], '$(SERVICE_ACCOUNT)');
  assert.equal(args[args.indexOf('--discovery') + 1], 'jibe-control-plane.jibe-system.svc:15012');
  const probe = proxy.readinessProbe as { exec: { command: string[] } };
  assert.match(probe.exec.command.join(' '), /127\.0\.0\.1:15000\/ready/);
});

test('the sidecar trades its token only over TLS: the https API on 15015, verified with the mounted jibe-ca-root-cert ConfigMap', () => {
  const out = injectPod(pod() as Required<KubePod>, DEFAULT_INJECTION);
  const proxy = out.spec.containers.find((c) => c.name === 'jibe-proxy')!;
  const args = proxy.args!;
  assert.equal(args[args.indexOf('--api') + 1], 'https://jibe-control-plane.jibe-system.svc:15015');
  const rootsFile = args[args.indexOf('--ca-root-file') + 1];
  assert.equal(rootsFile, `${CA_ROOT_MOUNT_PATH}/${CA_ROOT_KEY}`);
  assert.equal(rootsFile, '/var/run/jibe/ca/root-cert.pem');
  const mount = (proxy.volumeMounts as Array<{ name: string; mountPath: string; readOnly?: boolean }>).find((m) => m.name === CA_ROOT_VOLUME)!;
  assert.deepEqual(mount, { name: CA_ROOT_VOLUME, mountPath: CA_ROOT_MOUNT_PATH, readOnly: true });
  const volume = out.spec.volumes!.find((v) => v.name === CA_ROOT_VOLUME) as unknown as { configMap: { name: string; optional?: boolean; items: Array<{ key: string; path: string }> } };
  assert.equal(volume.configMap.name, CA_ROOT_CONFIGMAP);
  assert.equal(volume.configMap.optional, undefined, 'a pod waits for the roots rather than starting without them');
  assert.deepEqual(volume.configMap.items, [{ key: 'root-cert.pem', path: 'root-cert.pem' }]);
  assert.ok(JSON.parse(out.metadata.annotations!['sidecar.jibe.dev/status']).volumes.includes(CA_ROOT_VOLUME));
  // No plaintext API anywhere in the injected pod.
  assert.doesNotMatch(JSON.stringify(out), /http:\/\/jibe-control-plane|:15014/);
});
