// AdmissionReview handling as pure functions: the validating webhook runs
// core's whole apply validation (schema, semantics and cross-references
// against every rule in the cluster), so `kubectl apply` refuses exactly what
// `jibe apply` would, naming the field; the mutating webhook injects sidecars.
import type { JibeError } from '../../core/errors/errors.ts';
import { isJibeError } from '../../core/errors/errors.ts';
import { kindInfo, resourceKey } from '../../core/model/resource.ts';
import type { Resource } from '../../core/model/resource.ts';
import { validateApply, validateDelete } from '../../core/config/validate-apply.ts';
import { injectPod, isInjected, wantsInjection } from './inject-pod.ts';
import type { InjectionOptions } from './inject-pod.ts';
import type { KubeMeta, KubePod } from './kube-types.ts';

export interface AdmissionRequest {
  uid: string;
  kind?: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
  dryRun?: boolean;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

export function reviewResponse(request: AdmissionRequest | undefined, response: Omit<AdmissionResponse, 'uid'>): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request?.uid ?? '', ...response } };
}

/** A rule object from the API server as core's model has it: server-owned metadata dropped. */
export function toRuleResource(obj: Record<string, unknown>): Resource {
  const meta = (obj.metadata ?? {}) as KubeMeta;
  const metadata: Resource['metadata'] = { name: meta.name };
  if (meta.namespace) metadata.namespace = meta.namespace;
  if (meta.labels) metadata.labels = meta.labels;
  if (meta.annotations) {
    const annotations = Object.fromEntries(Object.entries(meta.annotations).filter(([k]) => k !== 'kubectl.kubernetes.io/last-applied-configuration'));
    if (Object.keys(annotations).length) metadata.annotations = annotations;
  }
  if (meta.resourceVersion) metadata.resourceVersion = meta.resourceVersion;
  return { apiVersion: obj.apiVersion as string, kind: obj.kind as string, metadata, spec: obj.spec };
}

/**
 * Validates a rule write against the rules as they are (`current`, any
 * group) and the hosts the mesh knows. Deletes are refused when they would
 * leave a dangling reference, as `jibe delete` refuses them.
 */
export function validateRuleReview(request: AdmissionRequest, current: readonly Resource[], knownHosts: Set<string>): AdmissionReview {
  try {
    if (request.operation === 'DELETE') {
      const kind = request.kind?.kind ?? (request.oldObject?.kind as string);
      const namespace = request.namespace ?? 'default';
      const key = `${kind}/${namespace}/${request.name}`;
      // Only a rule the store knows can break references; an unknown one deletes freely.
      if (current.some((r) => resourceKey(r) === key)) validateDelete([{ kind, namespace, name: request.name ?? '' }], [...current], knownHosts);
      return reviewResponse(request, { allowed: true });
    }
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return reviewResponse(request, { allowed: true });
    const object = request.object ?? {};
    const resource = toRuleResource(object);
    if (!kindInfo(resource.kind)) return reviewResponse(request, { allowed: true });
    const { resourceVersion: _rv, ...metadata } = resource.metadata;
    validateApply([{ resource: { ...resource, metadata }, source: {} }], [...current], knownHosts);
    return reviewResponse(request, { allowed: true });
  } catch (err) {
    if (!isJibeError(err)) throw err;
    return reviewResponse(request, { allowed: false, status: { code: 422, reason: 'Invalid', message: denialMessage(err) } });
  }
}

/** One line per problem, each naming the field, as kubectl prints the webhook's message. */
export function denialMessage(err: JibeError): string {
  const causes = err.details.causes?.length ? err.details.causes : [err];
  const lines = causes.map((c) => `${c.details.field ? `${c.details.field}: ` : ''}${c.message} [${c.code}]`);
  return `${err.code === 'JIBE_ERR_VALIDATION' ? 'rule rejected by Jibe' : err.message}: ${lines.join('; ')}`;
}

/**
 * The mutating webhook: a JSON Patch that injects the sidecar, or an allowed
 * response without one. Never denies: a pod that should not get a sidecar is
 * admitted as is, and a webhook problem must not block the cluster's pods.
 */
export function mutatePodReview(request: AdmissionRequest, namespaceLabels: Record<string, string> | undefined, options: InjectionOptions): AdmissionReview {
  const pod = request.object as unknown as KubePod | undefined;
  if (request.operation !== 'CREATE' || !pod?.spec || isInjected(pod.spec)) return reviewResponse(request, { allowed: true });
  if (!wantsInjection(pod.metadata ?? {}, namespaceLabels ?? {}, pod.spec)) return reviewResponse(request, { allowed: true });
  const injected = injectPod({ metadata: pod.metadata ?? ({} as KubeMeta), spec: pod.spec }, options);
  const patch: Array<{ op: 'add' | 'replace'; path: string; value: unknown }> = [];
  const set = (path: string, had: unknown, value: unknown) => patch.push({ op: had === undefined ? 'add' : 'replace', path, value });
  if (pod.metadata === undefined) patch.push({ op: 'add', path: '/metadata', value: {} });
  set('/metadata/labels', pod.metadata?.labels, injected.metadata?.labels);
  set('/metadata/annotations', pod.metadata?.annotations, injected.metadata?.annotations);
  set('/spec/initContainers', pod.spec.initContainers, injected.spec.initContainers);
  set('/spec/containers', pod.spec.containers, injected.spec.containers);
  set('/spec/volumes', pod.spec.volumes, injected.spec.volumes);
  return reviewResponse(request, { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
}
