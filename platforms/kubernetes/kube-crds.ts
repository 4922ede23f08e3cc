// CustomResourceDefinitions for the rule kinds, generated from the same JSON
// Schemas the validator uses (core/config/schemas), so `kubectl apply` and
// `jibe apply` can never disagree on shape. Istio's groups are read when their
// CRDs exist; Jibe installs its own groups only, so it can share a cluster with Istio.
import { KINDS } from '../../core/model/resource.ts';
import type { KindInfo } from '../../core/model/resource.ts';
import { specSchema } from '../../core/config/schemas/index.ts';
import type { JsonSchema } from '../../core/config/schemas/index.ts';
import type { KubeObject } from './kube-types.ts';

/** The groups Jibe installs CRDs for: the `*.jibe.dev` one of every kind. */
export function jibeGroup(info: KindInfo): string {
  return info.groups.find((g) => g.endsWith('jibe.dev')) ?? info.groups[0];
}

/**
 * `VirtualService` → `virtualservices`, `AuthorizationPolicy` →
 * `authorizationpolicies`, `Gateway` → `gateways` (Istio's own CRD name, which
 * the Istio group is read under), `ServiceAlias` → `servicealiases`.
 */
export function pluralOf(kind: string): string {
  const lower = kind.toLowerCase();
  if (/[^aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(lower)) return `${lower}es`;
  return `${lower}s`;
}

export interface RuleResourceType {
  kind: string;
  group: string;
  version: string;
  plural: string;
}

/** Every (group, kind) the config store reads, Jibe's groups first; Istio's are read only if installed. */
export function ruleResourceTypes(): RuleResourceType[] {
  const jibe: RuleResourceType[] = [];
  const istio: RuleResourceType[] = [];
  for (const info of KINDS) {
    if (!specSchema(info.kind)) continue;
    for (const group of info.groups) {
      (group.endsWith('jibe.dev') ? jibe : istio).push({ kind: info.kind, group, version: info.version, plural: pluralOf(info.kind) });
    }
  }
  return [...jibe, ...istio];
}

/**
 * A spec schema as a structural OpenAPI v3 schema: `additionalProperties: false`
 * dropped (Kubernetes prunes unknown fields and reports them with strict field
 * validation, and forbids it beside `properties`), and free-form objects marked
 * to keep their fields, which pruning would otherwise remove.
 */
export function toOpenApi(schema: JsonSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'additionalProperties') {
      if (typeof value === 'object') out.additionalProperties = toOpenApi(value as JsonSchema);
    } else if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, toOpenApi(v)]));
    } else if (key === 'items') {
      out.items = toOpenApi(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  if (schema.type === 'object' && !schema.properties && typeof schema.additionalProperties !== 'object') out['x-kubernetes-preserve-unknown-fields'] = true;
  return out;
}

/**
 * The spec's root keeps its typed fields but neither prunes unknown ones nor
 * requires any: the jibe-validator webhook reports both with the field named
 * and a suggestion (`weigth` → did you mean `weight`?), where the API server
 * would drop a typo silently. Deeper levels keep the full schema.
 */
function specRoot(schema: Record<string, unknown>): Record<string, unknown> {
  const { required: _required, ...rest } = schema;
  return { ...rest, 'x-kubernetes-preserve-unknown-fields': true };
}

export function buildCrd(info: KindInfo): KubeObject & { spec: Record<string, unknown> } {
  const group = jibeGroup(info);
  const plural = pluralOf(info.kind);
  const schema = specSchema(info.kind)!;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'jibe' } },
    spec: {
      group,
      // No short names: Istio's (vs, dr, gw…) would clash in a cluster running both; `kubectl get jibe` lists every kind.
      names: { kind: info.kind, listKind: `${info.kind}List`, plural, singular: info.kind.toLowerCase(), categories: ['jibe'] },
      scope: info.namespaced ? 'Namespaced' : 'Cluster',
      versions: [
        {
          name: info.version,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${info.kind}: ${schema.description ?? 'a Jibe rule (Istio API)'}. Validated in full, references included, by the jibe-validator webhook.`,
              required: ['spec'],
              properties: {
                spec: specRoot(toOpenApi(schema)),
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
          subresources: { status: {} },
          additionalPrinterColumns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
        },
      ],
    },
  };
}

/** The CRDs `jibe install` applies, one per kind, in KINDS order. */
export function buildCrds(): Array<KubeObject & { spec: Record<string, unknown> }> {
  return KINDS.filter((k) => specSchema(k.kind)).map(buildCrd);
}
