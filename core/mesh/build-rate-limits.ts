// RateLimits → the token buckets of one inbound listener. Limits are enforced
// by the destination's own sidecar (every caller counts, whatever proxy it
// comes through), so a limit lands on the inbound listener of each workload
// port that serves the limited host. A RateLimit applies from the service's
// own namespace or from the root namespace (mesh-wide), as Istio scopes
// workload policies; one in any other namespace would let a tenant throttle
// someone else's service.
import { tryParseDuration } from '../config/duration.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';
import { compareByAge, compareStrings, namespaceOf, stringMatcher } from './mesh-match.ts';
import type { StringMatch } from '../model/networking.ts';
import type { HeaderMatcher, LocalRateLimit, RouteMatch } from '../model/proxy-config.ts';
import type { RateLimit, RateLimitMatch, RateLimitRule } from '../model/rate-limit.ts';
import { DEFAULT_TOKENS_PER_FILL, MIN_FILL_INTERVAL_MS } from '../model/rate-limit.ts';
import { resolveHost } from '../model/service.ts';
import type { Workload } from '../model/workload.ts';

/**
 * The limits for the workload's inbound listener on `appPort`, in order:
 * oldest RateLimit first, its limits as written.
 */
export function rateLimitsForInbound(snapshot: MeshSnapshot, workload: Workload, appPort: number): LocalRateLimit[] {
  const rules = snapshot.rateLimits;
  if (!rules?.length) return [];
  const root = snapshot.settings.rootNamespace;
  const out: LocalRateLimit[] = [];
  for (const rl of [...rules].sort(compareByAge)) {
    const ns = namespaceOf(rl);
    if (typeof rl.spec?.host !== 'string') continue;
    const host = resolveHost(rl.spec.host, ns, snapshot.settings.domain);
    const service = snapshot.services.get(host);
    if (!service || (ns !== root && ns !== service.namespace)) continue;
    const binding = workload.services.find((b) => b.hostname === host);
    if (!binding) continue;
    // The service ports this listener serves: those whose target is this app port.
    const servicePorts = new Set(Object.keys(binding.ports).map(Number).filter((p) => binding.ports[p] === appPort));
    if (servicePorts.size === 0) continue;
    (rl.spec.limits ?? []).forEach((limit, i) => {
      const compiled = compileLimit(rl, limit, i, servicePorts);
      if (compiled) out.push(compiled);
    });
  }
  return out;
}

function compileLimit(rl: RateLimit, limit: RateLimitRule | undefined, index: number, servicePorts: Set<number>): LocalRateLimit | undefined {
  if (!limit || !(limit.maxTokens > 0)) return undefined;
  const fillIntervalMs = tryParseDuration(limit.fillInterval);
  if (fillIntervalMs === undefined) return undefined;
  const out: LocalRateLimit = {
    name: `RateLimit/${namespaceOf(rl)}/${rl.metadata.name}#${limit.name ?? index}`,
    maxTokens: Math.floor(limit.maxTokens),
    tokensPerFill: limit.tokensPerFill !== undefined && limit.tokensPerFill > 0 ? Math.floor(limit.tokensPerFill) : DEFAULT_TOKENS_PER_FILL,
    fillIntervalMs: Math.max(MIN_FILL_INTERVAL_MS, Math.round(fillIntervalMs)),
  };
  if (limit.match?.length) {
    // Entries for another service port never match here.
    const applicable = limit.match.filter((m) => m && (m.port === undefined || servicePorts.has(m.port)));
    if (applicable.length === 0) return undefined;
    const compiled = applicable.map(compileMatch);
    // An entry with no condition left matches every request, and so does the whole list then.
    if (compiled.every((m) => m !== undefined)) out.match = compiled as RouteMatch[];
  }
  const per = limit.per;
  if (per?.header) out.key = { header: per.header.toLowerCase() };
  else if (per?.sourcePrincipal) out.key = { sourcePrincipal: true };
  else if (per?.sourceIp) out.key = { sourceIp: true };
  return out;
}

/** undefined when the entry sets no condition (it matches every request). */
function compileMatch(m: RateLimitMatch): RouteMatch | undefined {
  const out: RouteMatch = {};
  const uri = stringMatcher(m.uri);
  if (uri) out.uri = uri;
  const method = stringMatcher(m.method);
  if (method) out.method = method;
  if (m.headers) {
    const headers: HeaderMatcher[] = [];
    for (const name of Object.keys(m.headers).sort(compareStrings)) {
      const h: HeaderMatcher = { name: name.toLowerCase() };
      const match = stringMatcher(m.headers[name] as StringMatch);
      if (match) h.match = match;
      headers.push(h);
    }
    if (headers.length) out.headers = headers;
  }
  return out.uri || out.method || out.headers ? out : undefined;
}

