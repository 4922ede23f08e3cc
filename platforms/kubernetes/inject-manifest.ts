// `jibe kube-inject`: injects every pod template in a multi-document manifest
// (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs,
// and those inside a List), leaving every other document as written.
import { parseAllDocuments, stringify } from 'yaml';
import { JibeError } from '../../core/errors/errors.ts';
import { injectPod, podTemplateOf, wantsInjection } from './inject-pod.ts';
import type { InjectionOptions } from './inject-pod.ts';

export interface InjectManifestResult {
  yaml: string;
  /** `Kind/name` of each object that got a sidecar. */
  injected: string[];
}

export function injectManifest(text: string, options: InjectionOptions, file?: string): InjectManifestResult {
  const docs = parseAllDocuments(text);
  const injected: string[] = [];
  const out: string[] = [];
  docs.forEach((doc, documentIndex) => {
    if (doc.errors.length) {
      throw new JibeError('JIBE_ERR_YAML_PARSE', `document ${documentIndex + 1} is not valid YAML: ${doc.errors[0].message}`, { file, documentIndex, hint: 'fix the YAML; kube-inject changed nothing' });
    }
    const value = doc.toJSON() as Record<string, unknown> | null;
    if (value === null || value === undefined) return;
    out.push(stringify(injectObject(value, options, injected), { lineWidth: 0 }));
  });
  return { yaml: out.join('---\n'), injected };
}

function injectObject(obj: Record<string, unknown>, options: InjectionOptions, injected: string[]): Record<string, unknown> {
  if (obj.kind === 'List' && Array.isArray(obj.items)) {
    return { ...obj, items: obj.items.map((item) => (item && typeof item === 'object' ? injectObject(item as Record<string, unknown>, options, injected) : item)) };
  }
  const template = podTemplateOf(obj);
  if (!template?.spec || !wantsInjection(template.metadata ?? {}, undefined, template.spec)) return obj;
  const next = injectPod(template, options);
  if (next === template) return obj;
  injected.push(`${obj.kind}/${(obj.metadata as { name?: string } | undefined)?.name ?? '?'}`);
  if (obj.kind === 'Pod') return next as unknown as Record<string, unknown>;
  const copy = structuredClone(obj);
  const spec = copy.spec as Record<string, unknown>;
  if (obj.kind === 'CronJob') ((spec.jobTemplate as Record<string, unknown>).spec as Record<string, unknown>).template = next;
  else spec.template = next;
  return copy;
}
