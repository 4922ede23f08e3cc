// Injected pods carry Istio's `security.istio.io/tlsMode: istio`, the fact auto
// mTLS keys on (core/mesh/build-tls.ts workloadTakesMtls), both offline and
// through the webhook's patch; a value the pod sets itself is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_INJECTION, injectPod } from '../../../../platforms/kubernetes/inject-pod.ts';
import { mutatePodReview } from '../../../../platforms/kubernetes/admission-review.ts';
import { TLS_MODE_LABEL } from '../../../../core/mesh/build-tls.ts';
import type { KubePod } from '../../../../platforms/kubernetes/kube-types.ts';

const pod = (labels?: Record<string, string>): KubePod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'reviews', namespace: 'bookinfo', ...(labels ? { labels } : {}) },
  spec: { containers: [{ name: 'reviews', image: 'reviews:v1', ports: [{ containerPort: 9080 }] }] },
});

test('offline injection labels the pod tlsMode=istio and keeps its other labels', () => {
  const injected = injectPod(pod({ app: 'reviews' }) as Required<KubePod>);
  assert.deepEqual(injected.metadata.labels, { app: 'reviews', [TLS_MODE_LABEL]: 'istio' });
  assert.equal(injectPod(pod() as Required<KubePod>).metadata.labels?.[TLS_MODE_LABEL], 'istio', 'a pod without labels gets them');
  assert.equal(injectPod(pod({ [TLS_MODE_LABEL]: 'disabled' }) as Required<KubePod>).metadata.labels?.[TLS_MODE_LABEL], 'disabled', "the pod's own value wins");
});

test('the webhook patch adds the label (add without labels, replace with them)', () => {
  for (const [labels, op] of [[undefined, 'add'], [{ app: 'reviews' }, 'replace']] as const) {
    const request = { uid: 'u1', operation: 'CREATE', object: pod(labels) as unknown as Record<string, unknown> };
    const review = mutatePodReview(request as Parameters<typeof mutatePodReview>[0], { 'jibe-injection': 'enabled' }, DEFAULT_INJECTION);
    const patch = JSON.parse(Buffer.from(review.response!.patch!, 'base64').toString()) as Array<{ op: string; path: string; value: Record<string, string> }>;
    const labelsOp = patch.find((p) => p.path === '/metadata/labels');
    assert.equal(labelsOp?.op, op);
    assert.equal(labelsOp?.value[TLS_MODE_LABEL], 'istio');
  }
});
