// The mesh-wide settings a config build uses: the MeshConfig rule (if one was
// applied in the root namespace) over the control plane's startup settings.
// Computed once per snapshot and shared by every proxy's build.
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { tryParseDuration } from '../config/duration.ts';
import { DEFAULT_RETRY_BUDGET, DEFAULT_TRACE_SAMPLING } from '../model/mesh-config.ts';
import type { OutboundTrafficPolicyMode, TracingSettings } from '../model/mesh-config.ts';
import type { MeshResource, RetryBudget } from '../model/proxy-config.ts';

export interface EffectiveMeshSettings {
  outboundTrafficPolicy: OutboundTrafficPolicyMode;
  retryBudget: RetryBudget;
  /** Undefined: the proxies' own flags decide. */
  accessLog: MeshResource['accessLog'];
  tracing: MeshResource['tracing'];
}

const cache = new WeakMap<MeshSnapshot, EffectiveMeshSettings>();

export function meshSettingsOf(snapshot: MeshSnapshot): EffectiveMeshSettings {
  let settings = cache.get(snapshot);
  if (!settings) {
    settings = compute(snapshot);
    cache.set(snapshot, settings);
  }
  return settings;
}

function compute(snapshot: MeshSnapshot): EffectiveMeshSettings {
  const spec = snapshot.meshConfig?.spec;
  const budget = spec?.defaultRetryBudget;
  const ttlMs = budget?.ttl !== undefined ? tryParseDuration(budget.ttl) : undefined;
  return {
    outboundTrafficPolicy: spec?.outboundTrafficPolicy?.mode ?? snapshot.settings.outboundTrafficPolicy ?? 'ALLOW_ANY',
    retryBudget: {
      retryRatio: finite(budget?.retryRatio) ?? DEFAULT_RETRY_BUDGET.retryRatio,
      minRetriesPerSecond: finite(budget?.minRetriesPerSecond) ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond,
      ttlMs: ttlMs !== undefined && ttlMs > 0 ? Math.round(ttlMs) : DEFAULT_RETRY_BUDGET.ttlMs,
    },
    accessLog: spec?.accessLog === undefined ? undefined : spec.accessLog.disabled === true ? 'off' : spec.accessLog.encoding === 'TEXT' ? 'text' : 'json',
    tracing: tracingOf(spec?.tracing),
  };
}

function tracingOf(tracing: TracingSettings | undefined): MeshResource['tracing'] {
  if (tracing === undefined) return undefined;
  const sampling = finite(tracing.sampling);
  const out: NonNullable<MeshResource['tracing']> = { sampling: sampling !== undefined ? Math.min(100, sampling) : DEFAULT_TRACE_SAMPLING };
  if (tracing.zipkinAddress) out.zipkinAddress = tracing.zipkinAddress;
  return out;
}

function finite(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined;
}
