// Publishes the roots the webhook serving certificate chains to into the
// webhook configurations' `caBundle`, so the API server trusts our webhook.
// Written by the leader only, with a JSON patch per webhook that first tests
// the value it replaces is still the one read: `jibe install` re-applying
// the configurations (which carry no caBundle) never fights this, and two
// writers never interleave.
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import type { KubeObject } from './kube-types.ts';

export const MUTATING_WEBHOOK_CONFIG = 'jibe-sidecar-injector';
export const VALIDATING_WEBHOOK_CONFIG = 'jibe-validator';

const ADMISSION = 'admissionregistration.k8s.io/v1';

interface WebhookConfiguration extends KubeObject {
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

export interface WebhookConfigRef {
  kind: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';
  name: string;
}

export const JIBE_WEBHOOK_CONFIGS: WebhookConfigRef[] = [
  { kind: 'MutatingWebhookConfiguration', name: MUTATING_WEBHOOK_CONFIG },
  { kind: 'ValidatingWebhookConfiguration', name: VALIDATING_WEBHOOK_CONFIG },
];

export function webhookConfigPath(ref: WebhookConfigRef): string {
  return kubePath(ADMISSION, ref.kind === 'MutatingWebhookConfiguration' ? 'mutatingwebhookconfigurations' : 'validatingwebhookconfigurations', undefined, ref.name);
}

export interface CaBundleResult {
  /** Configurations whose caBundle was changed. */
  patched: string[];
  /** Configurations already carrying the bundle. */
  current: string[];
  /** Configurations not installed (nothing to patch). */
  missing: string[];
}

/**
 * Sets `caBundle` (PEM roots, base64 on the wire) on every webhook of the
 * named configurations. Retries a lost race (422 from the `test` op, 409) a
 * few times with a fresh read.
 */
export async function publishWebhookCaBundle(client: KubeClient, rootsPem: string, configs: WebhookConfigRef[] = JIBE_WEBHOOK_CONFIGS): Promise<CaBundleResult> {
  const bundle = Buffer.from(rootsPem).toString('base64');
  const result: CaBundleResult = { patched: [], current: [], missing: [] };
  for (const ref of configs) {
    for (let attempt = 0; ; attempt++) {
      const path = webhookConfigPath(ref);
      const live = await client.get<WebhookConfiguration>(path);
      if (!live) {
        result.missing.push(ref.name);
        break;
      }
      const ops: unknown[] = [];
      (live.webhooks ?? []).forEach((w, i) => {
        const current = w.clientConfig?.caBundle;
        if (current === bundle) return;
        const at = `/webhooks/${i}/clientConfig/caBundle`;
        // `test` pins the webhook at that index by name and the old value, so a concurrent edit fails the patch instead of being overwritten.
        ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
        ops.push(current === undefined ? { op: 'add', path: at, value: bundle } : { op: 'test', path: at, value: current }, ...(current === undefined ? [] : [{ op: 'replace', path: at, value: bundle }]));
      });
      if (ops.length === 0) {
        result.current.push(ref.name);
        break;
      }
      try {
        await client.request('PATCH', path, { body: ops, contentType: 'application/json-patch+json', query: { fieldManager: 'jibe-control-plane' } });
        result.patched.push(ref.name);
        break;
      } catch (err) {
        const raced = err instanceof KubeApiError && (err.status === 409 || err.status === 422 || err.status === 500) && attempt < 4;
        if (!raced) throw err;
      }
    }
  }
  return result;
}
