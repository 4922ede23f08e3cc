// Shared set-up for tests against the real API server: install the rule CRDs
// and wait until they are established, create namespaces and service accounts
// (no controller-manager runs here to make the `default` one).
import { buildCrds } from '../../../platforms/kubernetes/kube-crds.ts';
import { KubeApiError, kubePath } from '../../../platforms/kubernetes/kube-client.ts';
import type { KubeClient } from '../../../platforms/kubernetes/kube-client.ts';

export async function installCrds(client: KubeClient): Promise<void> {
  for (const crd of buildCrds()) {
    await client.apply(kubePath('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, crd.metadata.name), crd, { fieldManager: 'jibe-test', force: true });
  }
  for (const crd of buildCrds()) {
    for (let i = 0; ; i++) {
      const live = await client.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(kubePath('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, crd.metadata.name));
      if (live?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 300) throw new Error(`CRD ${crd.metadata.name} not established`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // Discovery lags establishment a little; the store reads it.
  for (let i = 0; i < 300; i++) {
    const groups = await client.request<{ groups: Array<{ name: string }> }>('GET', '/apis');
    if (['networking.jibe.dev', 'security.jibe.dev', 'jibe.dev'].every((g) => groups.groups.some((x) => x.name === g))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function ensureNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}): Promise<void> {
  await client.apply(kubePath('v1', 'namespaces', undefined, name), { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }, { fieldManager: 'jibe-test', force: true });
  await ensureServiceAccount(client, name, 'default');
}

export async function ensureServiceAccount(client: KubeClient, namespace: string, name: string): Promise<void> {
  try {
    await client.request('POST', kubePath('v1', 'serviceaccounts', namespace), { body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } } });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
  }
}

/** A service-account token for `audience`, as a projected volume would hold (TokenRequest API). */
export async function serviceAccountToken(client: KubeClient, namespace: string, name: string, audience: string): Promise<string> {
  const res = await client.request<{ status: { token: string } }>('POST', kubePath('v1', 'serviceaccounts', namespace, name) + '/token', {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [audience], expirationSeconds: 3600 } },
  });
  return res.status.token;
}

export async function eventually<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
