// The policy layer's contract between the control plane and the proxy:
// MeshConfig `extensionProviders` (Istio's field names for ext authz, Jibe's
// own in-process kinds) as written, the compiled form the `mesh` resource
// carries to proxies, and the factory interface every adapter kind implements
// as a plugin. Types only, so core and the proxy can both see them.

/** Istio's MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationHttpProvider. */
export interface EnvoyExtAuthzHttpProvider {
  /** Host of the authorization service (`[<namespace>/]<host>`); the proxy dials it directly. */
  service: string;
  port: number;
  /** Duration (default 600ms, Envoy's). */
  timeout?: string;
  /** Prefixed to the request's path in the check request. */
  pathPrefix?: string;
  includeRequestHeadersInCheck?: string[];
  headersToUpstreamOnAllow?: string[];
  headersToDownstreamOnDeny?: string[];
  /** Allow when the service cannot be reached or answers too late (Envoy failure_mode_allow). */
  failOpen?: boolean;
  /** Status answered when the service cannot be reached (default 403), a string of digits as Istio has it. */
  statusOnError?: string;
}

/** One MeshConfig `extensionProviders[]` entry: a name and exactly one kind. */
export interface ExtensionProvider {
  name: string;
  envoyExtAuthzHttp?: EnvoyExtAuthzHttpProvider;
  /** Jibe: deny the requests the expression is true for (proxy/security/policy-adapter-expression.ts has the grammar). */
  denyExpression?: { expression: string };
  /** Jibe: allow or deny list over one Istio attribute key (`source.ip`, `request.headers[x-api-key]`). */
  list?: { attribute: string; values: string[]; mode: 'allow' | 'deny' };
  /** Jibe: a token bucket (per value of `key`, an Istio attribute key; absent = one for all), 429 when empty. */
  quota?: { maxTokens: number; tokensPerFill: number; fillInterval: string; key?: string };
}

export type PolicyAdapterKind = 'ext-authz-http' | 'deny-expression' | 'list' | 'quota';

/** The MeshConfig field of each kind, in the order the checks name them. */
export const EXTENSION_PROVIDER_FIELDS: ReadonlyArray<readonly [keyof ExtensionProvider, PolicyAdapterKind]> = [
  ['envoyExtAuthzHttp', 'ext-authz-http'],
  ['denyExpression', 'deny-expression'],
  ['list', 'list'],
  ['quota', 'quota'],
];

/** A provider as the `mesh` resource carries it: durations in ms, URL resolved. */
export type PolicyProviderConfig =
  | {
      name: string;
      kind: 'ext-authz-http';
      /** `http://host:port[/pathPrefix]`. */
      url: string;
      timeoutMs: number;
      failOpen: boolean;
      statusOnError: number;
      includeRequestHeaders: string[];
      headersToUpstream: string[];
      /** Absent: every header but hop-by-hop ones. */
      headersToDownstream?: string[];
    }
  | { name: string; kind: 'deny-expression'; expression: string }
  | { name: string; kind: 'list'; attribute: string; values: string[]; mode: 'allow' | 'deny' }
  | { name: string; kind: 'quota'; maxTokens: number; tokensPerFill: number; fillIntervalMs: number; key?: string };

/**
 * One adapter kind as a plugin (registered in cli/plugins.ts under the
 * POLICY_ADAPTER token). `create` loads the implementation lazily and throws
 * when the config cannot make a working adapter (the proxy then NACKs).
 * `A` is the proxy's PolicyAdapter; core never looks inside it.
 */
export interface PolicyAdapterPlugin<A = unknown> {
  name: PolicyAdapterKind;
  create(config: PolicyProviderConfig): Promise<A>;
}
