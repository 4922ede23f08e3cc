// The gate in front of every write: a batch is checked as a whole, against the
// config as it would be afterwards, and either every resource is accepted or
// one JIBE_ERR_VALIDATION lists every problem and nothing is applied.
import { JibeError } from '../errors/errors.ts';
import { DEFAULT_NAMESPACE, kindByName, kindInfo, resourceKey, ROOT_NAMESPACE } from '../model/resource.ts';
import type { Resource, ResourceSource } from '../model/resource.ts';
import type { ResourceRef } from './config-store.ts';
import { asObject } from './checks/check-context.ts';
import type { ParsedDocument } from './load-documents.ts';
import { validateReferences } from './validate-references.ts';
import { validateResource } from './validate-resource.ts';

/**
 * Validates a batch and returns it normalized (namespace defaulted, apiVersion
 * kept, `status` dropped), or throws one JIBE_ERR_VALIDATION whose
 * `details.causes` lists every problem.
 */
export function validateApply(batch: ParsedDocument[], current: Resource[], knownHosts: Set<string>): Resource[] {
  const causes: JibeError[] = [];
  const normalized: Resource[] = [];
  const sources = new Map<string, ResourceSource>();
  const invalid = new Set<string>();
  for (const doc of Array.isArray(batch) ? batch : []) {
    const errors = validateResource(doc);
    causes.push(...errors);
    const resource = normalize(doc?.resource);
    if (!resource) continue;
    const key = resourceKey(resource);
    const source = sourceOf(doc);
    const first = sources.get(key);
    if (first) {
      causes.push(
        new JibeError('JIBE_ERR_DUPLICATE', `${key} appears twice in this apply (first at ${describeSource(first)}); keep one of them`, { ...source, resource: key }),
      );
      continue;
    }
    sources.set(key, source);
    if (errors.length) invalid.add(key);
    normalized.push(resource);
  }

  const batchKeys = new Set(sources.keys());
  const after = [...current.filter((r) => !batchKeys.has(resourceKey(r))), ...normalized];
  causes.push(...meshConfigPlacement(normalized, after, sources));
  for (const e of newReferenceErrors(current, after, knownHosts, sources)) {
    const resource = e.details.resource ?? '';
    if (invalid.has(resource)) continue; // its own schema errors say what is wrong; a second round would repeat them
    causes.push(batchKeys.has(resource) ? e : brokenBy(e, 'this apply'));
  }

  if (causes.length) {
    const files = new Set(causes.map((c) => c.details.file));
    const documents = new Set(causes.filter((c) => c.details.documentIndex !== undefined).map((c) => `${c.details.file}#${c.details.documentIndex}`));
    const where = documents.size ? ` in ${documents.size} document${documents.size === 1 ? '' : 's'}` : '';
    throw new JibeError('JIBE_ERR_VALIDATION', `apply rejected: ${causes.length} problem${causes.length === 1 ? '' : 's'}${where}; nothing was applied`, {
      file: files.size === 1 ? [...files][0] : undefined,
      hint: 'fix every listed problem and apply the whole batch again',
      causes,
    });
  }
  return normalized;
}

/**
 * Refuses a delete that would leave dangling references (a VirtualService
 * routing to a subset of a deleted DestinationRule, bound to a deleted Gateway,
 * or sending to a deleted ServiceEntry's host). Returns the resources to delete.
 */
export function validateDelete(refs: ResourceRef[], current: Resource[], knownHosts: Set<string>): Resource[] {
  const byKey = new Map(current.map((r) => [resourceKey(r), r]));
  const targets: Resource[] = [];
  const missing: JibeError[] = [];
  for (const ref of refs) {
    const kind = kindByName(ref.kind)?.kind ?? ref.kind;
    const key = `${kind}/${ref.namespace || DEFAULT_NAMESPACE}/${ref.name}`;
    const resource = byKey.get(key);
    if (resource) targets.push(resource);
    else missing.push(new JibeError('JIBE_ERR_NOT_FOUND', `${key} does not exist`, { resource: key, hint: 'check kind, namespace and name with jibe get' }));
  }
  if (missing.length) {
    const [first, ...rest] = missing;
    if (rest.length) first.details.causes = rest;
    throw first;
  }
  const deleted = new Set(targets.map((r) => resourceKey(r)));
  const after = current.filter((r) => !deleted.has(resourceKey(r)));
  const dangling = newReferenceErrors(current, after, knownHosts).map((e) => brokenBy(e, `deleting ${[...deleted].join(', ')}`));
  if (dangling.length) {
    const names = [...deleted].join(', ');
    throw new JibeError('JIBE_ERR_REFERENCE', `deleting ${names} would leave ${dangling.length} dangling reference${dangling.length === 1 ? '' : 's'}; nothing was deleted`, {
      resource: deleted.size === 1 ? names : undefined,
      hint: 'change or delete the rules that still refer to it first, or delete them in the same call',
      causes: dangling,
    });
  }
  return targets;
}

/**
 * Reference errors of `after` that `before` did not have. A reference that was
 * already dangling (say a service left the registry) must not block unrelated
 * writes. Compared by resource and field, not message: a message's suggestion
 * may change with the config.
 */
function newReferenceErrors(before: Resource[], after: Resource[], knownHosts: Set<string>, sources?: Map<string, ResourceSource>): JibeError[] {
  const signature = (e: JibeError) => `${e.details.resource}\0${e.details.field}`;
  const old = new Set(validateReferences(before, knownHosts).map(signature));
  return validateReferences(after, knownHosts, sources).filter((e) => !old.has(signature(e)) || (sources?.has(e.details.resource ?? '') ?? false));
}

/** MeshConfig is mesh-wide: one, in the root namespace, or sidecars could not tell which settings hold. */
function meshConfigPlacement(batch: Resource[], after: Resource[], sources: Map<string, ResourceSource>): JibeError[] {
  const errors: JibeError[] = [];
  const placed = after.filter((r) => r.kind === 'MeshConfig' && r.metadata.namespace === ROOT_NAMESPACE).map((r) => resourceKey(r));
  for (const r of batch) {
    if (r.kind !== 'MeshConfig') continue;
    const key = resourceKey(r);
    if (r.metadata.namespace !== ROOT_NAMESPACE) {
      errors.push(
        new JibeError('JIBE_ERR_SCHEMA', `a MeshConfig holds mesh-wide settings and must be in the root namespace ${ROOT_NAMESPACE}, not ${r.metadata.namespace}`, {
          ...sources.get(key),
          resource: key,
          field: 'metadata.namespace',
          hint: `set metadata.namespace: ${ROOT_NAMESPACE}`,
        }),
      );
    } else if (placed.length > 1) {
      const others = placed.filter((k) => k !== key);
      errors.push(
        new JibeError('JIBE_ERR_DUPLICATE', `only one MeshConfig may exist per mesh, and ${others.join(', ')} would exist too`, {
          ...sources.get(key),
          resource: key,
          field: 'metadata.name',
          hint: `edit ${others[0]} instead, or delete it in the same change`,
        }),
      );
    }
  }
  return errors;
}

function brokenBy(e: JibeError, action: string): JibeError {
  return new JibeError(e.code, `${e.message}; ${action} would break this existing rule`, e.details);
}

/** A resource as the store keeps it; undefined when the envelope is too broken to key it. */
function normalize(value: unknown): Resource | undefined {
  const r = asObject(value);
  const metadata = asObject(r?.metadata);
  if (!r || !metadata || typeof r.kind !== 'string' || typeof metadata.name !== 'string' || !metadata.name) return undefined;
  const namespaced = kindInfo(r.kind)?.namespaced ?? true;
  const meta = structuredClone(metadata) as unknown as Resource['metadata'];
  if (namespaced && (typeof meta.namespace !== 'string' || meta.namespace === '')) meta.namespace = DEFAULT_NAMESPACE;
  return { apiVersion: r.apiVersion as string, kind: r.kind, metadata: meta, spec: structuredClone(r.spec) };
}

function sourceOf(doc: ParsedDocument): ResourceSource {
  const s = asObject(doc?.source) ?? {};
  const out: ResourceSource = {};
  if (typeof s.file === 'string') out.file = s.file;
  if (typeof s.documentIndex === 'number') out.documentIndex = s.documentIndex;
  return out;
}

function describeSource(s: ResourceSource): string {
  if (s.file === undefined && s.documentIndex === undefined) return 'an earlier document';
  return `${s.file ?? 'input'}${s.documentIndex !== undefined ? ` (document ${s.documentIndex + 1})` : ''}`;
}
