// The mesh roots as a ConfigMap, `jibe-ca-root-cert` (key `root-cert.pem`), in
// every namespace with sidecars, as istiod keeps `istio-ca-root-cert`: the
// injected sidecar mounts it and verifies the control plane's TLS API with it
// before its service-account token leaves the pod. Written by the leader
// only, again whenever the roots change (both roots during a rotation's
// overlap, so sidecars that still hold the old chain and the new one agree).
//
// RBAC stays narrow: `create` on configmaps (a create cannot be limited by
// name) and `get`/`update` on this one name only, so no list or watch of
// ConfigMaps cluster-wide; the leader re-reads each namespace's copy on its
// periodic round instead of watching.
import { KubeApiError, kubePath } from './kube-client.ts';
import type { KubeClient } from './kube-client.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, INJECTION_LABEL } from './inject-pod.ts';
import type { KubeNamespace, KubeObject } from './kube-types.ts';

export const CA_ROOT_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/part-of': 'jibe', 'app.kubernetes.io/component': 'ca-root-cert' };

interface KubeConfigMap extends KubeObject {
  data?: Record<string, string>;
}

export type CaRootOutcome = 'created' | 'updated' | 'current' | 'skipped';

export interface CaRootPublishResult {
  created: string[];
  updated: string[];
  current: string[];
  /** Namespaces gone or terminating: nothing to write. */
  skipped: string[];
  /** Namespace → why its ConfigMap could not be written (RBAC, API errors); retried next round. */
  failed: Map<string, string>;
}

/** The file a sidecar reads: every root, one PEM block after the other, newline-terminated. */
export function caRootPem(roots: readonly string[]): string {
  return roots.map((r) => `${r.trim()}\n`).join('');
}

/** The ConfigMap for one namespace. */
export function caRootConfigMap(namespace: string, roots: readonly string[]): KubeConfigMap & { apiVersion: string; kind: string } {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: CA_ROOT_CONFIGMAP, namespace, labels: { ...CA_ROOT_LABELS } },
    data: { [CA_ROOT_KEY]: caRootPem(roots) },
  };
}

/** Whether a namespace gets the roots because of its own label (pods with sidecars elsewhere are the registry's to report). */
export function namespaceWantsCaRoot(ns: Pick<KubeNamespace, 'metadata' | 'status'>): boolean {
  return ns.metadata.labels?.[INJECTION_LABEL] === 'enabled' && ns.status?.phase !== 'Terminating';
}

/**
 * Makes `namespace`'s ConfigMap carry exactly `roots`: created when missing,
 * updated (compare-and-set on resourceVersion) when different. Another
 * replica racing us (409) is retried with a fresh read.
 */
export async function publishCaRoot(client: KubeClient, namespace: string, roots: readonly string[]): Promise<CaRootOutcome> {
  const path = kubePath('v1', 'configmaps', namespace, CA_ROOT_CONFIGMAP);
  const want = caRootConfigMap(namespace, roots);
  for (let attempt = 0; ; attempt++) {
    try {
      const live = await client.get<KubeConfigMap>(path);
      if (!live) {
        await client.request('POST', kubePath('v1', 'configmaps', namespace), { body: want, query: { fieldManager: 'jibe-control-plane' } });
        return 'created';
      }
      const labelled = Object.entries(CA_ROOT_LABELS).every(([k, v]) => live.metadata.labels?.[k] === v);
      if (live.data?.[CA_ROOT_KEY] === want.data![CA_ROOT_KEY] && labelled) return 'current';
      // Other keys a user added are kept; ours is replaced.
      const body = { ...live, metadata: { ...live.metadata, labels: { ...live.metadata.labels, ...CA_ROOT_LABELS } }, data: { ...live.data, ...want.data } };
      await client.request('PUT', path, { body, query: { fieldManager: 'jibe-control-plane' } });
      return 'updated';
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      if (err.status === 409 && attempt < 4) continue;
      // The namespace is gone (404 on create) or terminating (403 with reason NamespaceTerminating / 404).
      const terminating = err.status === 403 && (err.apiStatus?.details?.causes?.some((c) => c.reason === 'NamespaceTerminating') || /being terminated/i.test(err.message));
      if (err.status === 404 || terminating) return 'skipped';
      throw err;
    }
  }
}

/** Publishes into each namespace; one failing namespace does not stop the others. */
export async function publishCaRootToAll(client: KubeClient, namespaces: Iterable<string>, roots: readonly string[]): Promise<CaRootPublishResult> {
  const result: CaRootPublishResult = { created: [], updated: [], current: [], skipped: [], failed: new Map() };
  for (const ns of new Set(namespaces)) {
    try {
      result[await publishCaRoot(client, ns, roots)].push(ns);
    } catch (err) {
      result.failed.set(ns, (err as Error).message);
    }
  }
  return result;
}
