// Mesh-wide settings (`jibe.dev/v1alpha1` MeshConfig): what Istio keeps in its
// `istio` ConfigMap, as a rule so it is applied, validated and watched like the
// others. One per mesh, in the root namespace (jibe-system). Example:
//
//   apiVersion: jibe.dev/v1alpha1
//   kind: MeshConfig
//   metadata: { name: mesh, namespace: jibe-system }
//   spec:
//     outboundTrafficPolicy: { mode: REGISTRY_ONLY }
//     defaultRetryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s }
//     accessLog: { encoding: JSON }
//     tracing: { sampling: 1, zipkinAddress: zipkin.jibe-system:9411 }
//     extensionProviders:          # named by CUSTOM AuthorizationPolicies' provider.name
//     - name: ext-authz
//       envoyExtAuthzHttp: { service: ext-authz.foo.svc.cluster.local, port: 8000, includeRequestHeadersInCheck: [x-ext-authz] }
//     - name: no-bots
//       denyExpression: { expression: 'request.headers[user-agent] contains "bot"' }
import type { ExtensionProvider } from './policy-adapter.ts';
import type { Resource } from './resource.ts';

export type OutboundTrafficPolicyMode = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface RetryBudgetSettings {
  /** Retries allowed per request, over `ttl` (Linkerd's retryRatio; 0.2 = 20% extra load at most). */
  retryRatio?: number;
  /** Retries always allowed per second, so low-traffic services can still retry. */
  minRetriesPerSecond?: number;
  /** Window the ratio is computed over (duration). */
  ttl?: string;
}

export interface MeshConfigSpec {
  /** What sidecars do with a destination no service matches: pass it through (ALLOW_ANY, default) or refuse it. */
  outboundTrafficPolicy?: { mode?: OutboundTrafficPolicyMode };
  /** Retry budget of every outbound cluster (Linkerd's defaults: 0.2, 10/s, 10s). */
  defaultRetryBudget?: RetryBudgetSettings;
  /**
   * Access logs of every proxy (Istio's accessLogEncoding). Absent: each
   * proxy's `--access-log` flag decides, which is how one workload is switched
   * on or off alone; present, it overrides the flags mesh-wide.
   */
  accessLog?: AccessLogSettings;
  /** Tracing of every proxy (Istio's defaultConfig.tracing with a Zipkin collector). Absent: the proxies' flags. */
  tracing?: TracingSettings;
  /**
   * Policy adapters CUSTOM AuthorizationPolicies name as `provider.name`
   * (Istio's extensionProviders; envoyExtAuthzHttp plus Jibe's in-process kinds).
   */
  extensionProviders?: ExtensionProvider[];
}

export interface AccessLogSettings {
  /** Line format (default JSON). */
  encoding?: 'JSON' | 'TEXT';
  /** True turns access logs off everywhere. */
  disabled?: boolean;
}

export interface TracingSettings {
  /** Percentage of new traces sampled, 0–100 (Istio's default 1). Requests that arrive sampled stay sampled. */
  sampling?: number;
  /** Zipkin collector, `host:port` or an http(s) URL; without it spans are propagated but not reported. */
  zipkinAddress?: string;
}

/** Istio's default trace sampling percentage. */
export const DEFAULT_TRACE_SAMPLING = 1;

export type MeshConfig = Resource<'MeshConfig', MeshConfigSpec>;

export const DEFAULT_RETRY_BUDGET = { retryRatio: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 } as const;
