// What a MeshConfig's schema cannot say about its own spec. Where it may live
// (the root namespace, one per mesh) is a property of the whole config and is
// checked in validate-apply.ts.
import type { SpecCheck } from './check-context.ts';
import { asObject, asString } from './check-context.ts';
import { checkMinDuration } from './check-common.ts';

export const checkMeshConfig: SpecCheck = (spec, report) => {
  const budget = asObject(spec.defaultRetryBudget);
  // A window under a second makes minRetriesPerSecond meaningless (Linkerd bounds ttl to 1s..60s).
  checkMinDuration(budget?.ttl, 'spec.defaultRetryBudget.ttl', report, 1000, 'must be at least 1s');
  const zipkin = asString(asObject(spec.tracing)?.zipkinAddress);
  if (zipkin !== undefined && zipkin !== '' && !collectorAddressOk(zipkin)) {
    report('JIBE_ERR_SCHEMA', 'spec.tracing.zipkinAddress', `${JSON.stringify(zipkin)} is not a collector address: use host:port (zipkin.jibe-system:9411) or an http(s) URL`);
  }
};

/** What the proxies' Zipkin reporter accepts: an http(s) URL, or host:port (IPv6 in brackets). */
function collectorAddressOk(address: string): boolean {
  if (/^https?:\/\//.test(address)) return URL.canParse(address);
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535 && URL.canParse(`http://${address}/`);
}
