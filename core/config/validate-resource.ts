// Validates one resource on its own: the envelope (known kind and apiVersion,
// well-formed names), its spec against the kind's JSON Schema, then the kind's
// semantic checks. Every problem is reported, each naming file, document,
// resource and field, so a user fixes a file in one round.
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { JibeError } from '../errors/errors.ts';
import type { ErrorCode } from '../errors/errors.ts';
import { DEFAULT_NAMESPACE, isAcceptedApiVersion, KINDS, kindInfo, resourceKey } from '../model/resource.ts';
import type { KindInfo } from '../model/resource.ts';
import { SPEC_CHECKS } from './checks/index.ts';
import { asObject } from './checks/check-context.ts';
import { DURATION_HINT, tryParseDuration } from './duration.ts';
import { joinField, pointerToField } from './field-path.ts';
import type { ParsedDocument } from './load-documents.ts';
import { closest, isDns1123Label, isDns1123Subdomain, LABEL_RULE, SUBDOMAIN_RULE } from './names.ts';
import { specSchema } from './schemas/index.ts';

// `status` is tolerated (and ignored) so `kubectl get -o yaml` output applies as is.
const ENVELOPE_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];
/** Versions tried when listing what a kind accepts; isAcceptedApiVersion decides. */
const CANDIDATE_VERSIONS = ['v1', 'v1beta1', 'v1alpha3', 'v1alpha1'];

const ajv = new Ajv({ allErrors: true, strict: true, verbose: true });
ajv.addFormat('duration', { type: 'string', validate: (s: string) => tryParseDuration(s) !== undefined });

const validators = new Map<string, ValidateFunction>();

/** The compiled spec validator of a kind: compiled on first use, then reused. */
function specValidator(kind: string): ValidateFunction | undefined {
  let validate = validators.get(kind);
  if (!validate) {
    const schema = specSchema(kind);
    if (!schema) return undefined;
    validate = ajv.compile(schema);
    validators.set(kind, validate);
  }
  return validate;
}

/** Kinds that can be applied: known to the model and with a schema here. */
export function validatableKinds(): string[] {
  return KINDS.filter((k) => specSchema(k.kind)).map((k) => k.kind);
}

/** Every apiVersion a kind is accepted under, the preferred one first. */
export function acceptedApiVersions(info: KindInfo): string[] {
  const out: string[] = [];
  for (const group of info.groups) {
    for (const version of [info.version, ...CANDIDATE_VERSIONS]) {
      const apiVersion = `${group}/${version}`;
      if (!out.includes(apiVersion) && isAcceptedApiVersion(info, apiVersion)) out.push(apiVersion);
    }
  }
  return out;
}

export function validateResource(doc: ParsedDocument): JibeError[] {
  const errors: JibeError[] = [];
  const source = asObject(doc?.source) ?? {};
  const location = {
    file: typeof source.file === 'string' ? source.file : undefined,
    documentIndex: typeof source.documentIndex === 'number' ? source.documentIndex : undefined,
  };
  const r = asObject(doc?.resource);
  if (!r) {
    errors.push(new JibeError('JIBE_ERR_SCHEMA', 'a resource must be a mapping with apiVersion, kind, metadata and spec', location));
    return errors;
  }
  const metadata = asObject(r.metadata);
  const kind = typeof r.kind === 'string' ? r.kind : undefined;
  const name = typeof metadata?.name === 'string' ? metadata.name : undefined;
  const namespace = typeof metadata?.namespace === 'string' ? metadata.namespace : DEFAULT_NAMESPACE;
  const resource = kind && name ? resourceKey({ kind, metadata: { name, namespace } }) : undefined;
  const report = (code: ErrorCode, field: string, message: string) => errors.push(new JibeError(code, message, { ...location, resource, field }));

  for (const key of Object.keys(r)) {
    if (!ENVELOPE_FIELDS.includes(key)) report('JIBE_ERR_SCHEMA', key, unknownFieldMessage(key, ENVELOPE_FIELDS));
  }
  const info = kind ? kindInfo(kind) : undefined;
  const known = validatableKinds();
  if (!kind) {
    report('JIBE_ERR_SCHEMA', 'kind', `kind is required (one of: ${known.join(', ')})`);
  } else if (!info || !specSchema(kind)) {
    const guess = closest(kind, known);
    report('JIBE_ERR_UNKNOWN_KIND', 'kind', `unknown kind ${JSON.stringify(kind)}${guess ? ` (did you mean ${guess}?)` : ''}; known kinds: ${known.join(', ')}`);
  } else if (typeof r.apiVersion !== 'string' || !isAcceptedApiVersion(info, r.apiVersion)) {
    const [preferred, ...others] = acceptedApiVersions(info);
    report(
      'JIBE_ERR_UNKNOWN_KIND',
      'apiVersion',
      `${kind} is not served under apiVersion ${JSON.stringify(r.apiVersion)}; use ${preferred}${others.length ? ` (also accepted: ${others.join(', ')})` : ''}`,
    );
  }
  checkMetadata(r.metadata, info, report);
  if (!info || !kind) return errors;

  if (r.spec === undefined || r.spec === null) {
    report('JIBE_ERR_SCHEMA', 'spec', `spec is required for ${kind}`);
    return errors;
  }
  const validate = specValidator(kind)!;
  if (!validate(r.spec)) {
    for (const e of validate.errors ?? []) {
      const { field, message } = describeAjvError(e, r.spec);
      report('JIBE_ERR_SCHEMA', field, message);
    }
  }
  const spec = asObject(r.spec);
  if (spec) SPEC_CHECKS.get(kind)?.(spec, report);
  return dedupe(errors);
}

function checkMetadata(value: unknown, info: KindInfo | undefined, report: (code: ErrorCode, field: string, message: string) => void): void {
  const metadata = asObject(value);
  if (!metadata) {
    report('JIBE_ERR_SCHEMA', 'metadata', value === undefined ? 'metadata is required' : 'metadata must be a mapping');
    return;
  }
  const { name, namespace } = metadata;
  if (typeof name !== 'string' || name === '') {
    report('JIBE_ERR_SCHEMA', 'metadata.name', 'metadata.name is required');
  } else if (!isDns1123Subdomain(name)) {
    report('JIBE_ERR_SCHEMA', 'metadata.name', `invalid name ${JSON.stringify(name)}: use ${SUBDOMAIN_RULE}`);
  }
  if (namespace !== undefined) {
    if (info && !info.namespaced) {
      report('JIBE_ERR_SCHEMA', 'metadata.namespace', `${info.kind} is cluster-wide; remove metadata.namespace`);
    } else if (typeof namespace !== 'string' || !isDns1123Label(namespace)) {
      report('JIBE_ERR_SCHEMA', 'metadata.namespace', `invalid namespace ${JSON.stringify(namespace)}: use ${LABEL_RULE}`);
    }
  }
  for (const key of ['labels', 'annotations']) {
    const map = metadata[key];
    if (map === undefined) continue;
    const entries = asObject(map);
    if (!entries) {
      report('JIBE_ERR_SCHEMA', `metadata.${key}`, `metadata.${key} must be a mapping of strings`);
      continue;
    }
    for (const [k, v] of Object.entries(entries)) {
      if (typeof v !== 'string') report('JIBE_ERR_SCHEMA', joinField(`metadata.${key}`, k), `must be a string, not ${describeValue(v)} (quote it: "${String(v)}")`);
    }
  }
}

function describeAjvError(e: ErrorObject, spec: unknown): { field: string; message: string } {
  const field = pointerToField('spec', e.instancePath, spec);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return { field: joinField(field, prop), message: unknownFieldMessage(prop, known) };
    }
    case 'required':
      return { field: joinField(field, String(p.missingProperty)), message: `required field ${JSON.stringify(p.missingProperty)} is missing` };
    case 'type':
      return { field, message: `must be ${article(String(p.type))}, not ${describeValue(e.data)}` };
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const guess = typeof e.data === 'string' ? closest(e.data, allowed) : undefined;
      return { field, message: `${JSON.stringify(e.data)} is not one of: ${allowed.join(', ')}${guess ? ` (did you mean ${guess}?)` : ''}` };
    }
    case 'minimum':
      return { field, message: `must be at least ${p.limit}, not ${JSON.stringify(e.data)}` };
    case 'maximum':
      return { field, message: `must be at most ${p.limit}, not ${JSON.stringify(e.data)}` };
    case 'minItems':
      return { field, message: `must list at least ${p.limit} item${p.limit === 1 ? '' : 's'}` };
    case 'minLength':
      return { field, message: 'must not be empty' };
    case 'format':
      if (p.format === 'duration') return { field, message: `invalid duration ${JSON.stringify(e.data)} (${DURATION_HINT})` };
      return { field, message: `${JSON.stringify(e.data)} is not a valid ${p.format}` };
    default:
      return { field, message: e.message ?? 'is invalid' };
  }
}

function unknownFieldMessage(prop: string, known: string[]): string {
  const guess = closest(prop, known);
  if (guess) return `unknown field ${JSON.stringify(prop)} (did you mean ${JSON.stringify(guess)}?)`;
  return `unknown field ${JSON.stringify(prop)}${known.length ? ` (known fields here: ${known.join(', ')})` : ''}`;
}

function article(type: string): string {
  const names: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false' };
  return names[type] ?? type;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null (empty)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

function dedupe(errors: JibeError[]): JibeError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.code}\0${e.details.field}\0${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
