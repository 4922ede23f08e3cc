// What a DestinationRule's schema cannot say: unique, well-formed subset names,
// one load-balancing choice, one hash key, timeouts and intervals Envoy accepts,
// TLS settings that can work.
import type { Report, SpecCheck } from './check-context.ts';
import { asArray, asObject, eachObject } from './check-context.ts';
import { checkClientTls } from './tls.ts';
import { checkExportTo, checkHeaderName, checkHost, checkLabelName, checkMinDuration, checkUnique } from './check-common.ts';

export const checkDestinationRule: SpecCheck = (spec, report) => {
  checkHost(spec.host, 'spec.host', report);
  checkTrafficPolicy(spec.trafficPolicy, 'spec.trafficPolicy', report);
  const top = asObject(spec.trafficPolicy);
  checkLocalityFailoverHasOutlierDetection(top, [top], 'spec.trafficPolicy', report);
  eachObject(spec.subsets, 'spec.subsets', (subset, field) => {
    checkLabelName(subset.name, `${field}.name`, report, 'subset name');
    checkTrafficPolicy(subset.trafficPolicy, `${field}.trafficPolicy`, report);
    const own = asObject(subset.trafficPolicy);
    checkLocalityFailoverHasOutlierDetection(own, [own, top], `${field}.trafficPolicy`, report);
  });
  checkUnique(spec.subsets, 'spec.subsets', 'name', 'subset name', report);
  checkExportTo(spec.exportTo, 'spec.exportTo', report);
};

/**
 * Failover moves traffic only when outlier detection ejects the endpoints that
 * fail (Istio applies no failover without it), so a rule asking for failover
 * without outlier detection would silently never fail over.
 */
function checkLocalityFailoverHasOutlierDetection(policy: Record<string, unknown> | undefined, levels: Array<Record<string, unknown> | undefined>, field: string, report: Report): void {
  if (!policy) return;
  const check = (p: Record<string, unknown>, f: string, extra: Array<Record<string, unknown> | undefined>) => {
    const setting = asObject(asObject(p.loadBalancer)?.localityLbSetting);
    if (!setting || setting.enabled === false) return;
    if (setting.failover === undefined && setting.failoverPriority === undefined) return;
    if ([p, ...extra].some((l) => l?.outlierDetection !== undefined)) return;
    report('JIBE_ERR_SCHEMA', `${f}.loadBalancer.localityLbSetting`, 'failover needs outlierDetection on this traffic policy (only ejecting failed endpoints moves traffic to the next locality); add trafficPolicy.outlierDetection');
  };
  check(policy, field, levels.slice(1));
  // A port's settings replace the level they belong to whole, so only they (and a subset's top level above a subset port) count.
  eachObject(policy.portLevelSettings, `${field}.portLevelSettings`, (p, f) => check(p, f, levels.slice(1)));
}

function checkLocality(value: unknown, field: string, report: Report, opts: { wildcard: boolean; regionOnly?: boolean }): void {
  if (typeof value !== 'string') return;
  const parts = value.split('/');
  const problem =
    parts.length > 3
      ? 'a locality has at most three parts, region/zone/subzone'
      : opts.regionOnly && parts.length > 1
        ? 'failover names regions only (no zone)'
        : parts.some((p, i) => p === '' || (p.includes('*') && (p !== '*' || !opts.wildcard || i !== parts.length - 1)))
          ? `empty parts are not allowed, and ${opts.wildcard ? '"*" only as the whole last part' : 'no "*"'}`
          : undefined;
  if (problem) report('JIBE_ERR_SCHEMA', field, `invalid locality ${JSON.stringify(value)}: ${problem}`);
}

function checkLocalityLbSetting(value: unknown, field: string, report: Report): void {
  const setting = asObject(value);
  if (!setting) return;
  if (setting.distribute !== undefined && setting.failover !== undefined) {
    report('JIBE_ERR_SCHEMA', field, 'distribute and failover are mutually exclusive; keep one of them');
  }
  if (setting.distribute !== undefined && setting.failoverPriority !== undefined) {
    report('JIBE_ERR_SCHEMA', field, 'failoverPriority only works with failover, not with distribute; keep one of them');
  }
  eachObject(setting.distribute, `${field}.distribute`, (d, f) => {
    checkLocality(d.from, `${f}.from`, report, { wildcard: true });
    const to = asObject(d.to) ?? {};
    let sum = 0;
    for (const [locality, weight] of Object.entries(to)) {
      checkLocality(locality, `${f}.to`, report, { wildcard: true });
      if (typeof weight === 'number') sum += weight;
    }
    if (Object.keys(to).length && sum !== 100) report('JIBE_ERR_WEIGHTS', `${f}.to`, `the weights add up to ${sum}, not 100`);
  });
  checkUnique(setting.distribute, `${field}.distribute`, 'from', 'from locality', report);
  eachObject(setting.failover, `${field}.failover`, (fo, f) => {
    checkLocality(fo.from, `${f}.from`, report, { wildcard: false, regionOnly: true });
    checkLocality(fo.to, `${f}.to`, report, { wildcard: false, regionOnly: true });
    if (typeof fo.from === 'string' && fo.from === fo.to) report('JIBE_ERR_SCHEMA', `${f}.to`, 'failover to the same region is what already happens; name another region');
  });
  checkUnique(setting.failover, `${field}.failover`, 'from', 'failover from region', report);
  const seen = new Set<unknown>();
  asArray(setting.failoverPriority).forEach((label, i) => {
    if (seen.has(label)) report('JIBE_ERR_DUPLICATE', `${field}.failoverPriority[${i}]`, `label ${JSON.stringify(label)} is listed twice`);
    seen.add(label);
  });
}

function checkTrafficPolicy(value: unknown, field: string, report: Report): void {
  const policy = asObject(value);
  if (!policy) return;
  checkPolicyFields(policy, field, report);
  eachObject(policy.portLevelSettings, `${field}.portLevelSettings`, (settings, f) => checkPolicyFields(settings, f, report));
  checkUnique(policy.portLevelSettings, `${field}.portLevelSettings`, 'port.number', 'port', report);
}

function checkPolicyFields(policy: Record<string, unknown>, field: string, report: Report): void {
  const lb = asObject(policy.loadBalancer);
  if (lb) {
    if (lb.simple !== undefined && lb.consistentHash !== undefined) {
      report('JIBE_ERR_SCHEMA', `${field}.loadBalancer`, 'simple and consistentHash are mutually exclusive; keep one of them');
    }
    const hash = asObject(lb.consistentHash);
    if (hash) {
      const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'].filter((k) => hash[k] !== undefined && hash[k] !== false);
      if (keys.length !== 1) {
        report('JIBE_ERR_SCHEMA', `${field}.loadBalancer.consistentHash`, `set exactly one hash key of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName${keys.length ? `, not ${keys.join(' and ')}` : ''}`);
      }
      if (hash.ringHash !== undefined && hash.maglev !== undefined) {
        report('JIBE_ERR_SCHEMA', `${field}.loadBalancer.consistentHash`, 'ringHash and maglev are mutually exclusive; keep one of them');
      }
      checkHeaderName(hash.httpHeaderName, `${field}.loadBalancer.consistentHash.httpHeaderName`, report);
      checkMinDuration(asObject(hash.httpCookie)?.ttl, `${field}.loadBalancer.consistentHash.httpCookie.ttl`, report, 0);
      const ringSize = asObject(hash.ringHash)?.minimumRingSize ?? hash.minimumRingSize;
      if (ringSize === 0) report('JIBE_ERR_SCHEMA', `${field}.loadBalancer.consistentHash.ringHash.minimumRingSize`, 'minimumRingSize must be at least 1 (omit it for the default, 1024)');
    }
    checkLocalityLbSetting(lb.localityLbSetting, `${field}.loadBalancer.localityLbSetting`, report);
  }
  checkConnectionPool(policy.connectionPool, `${field}.connectionPool`, report);
  checkOutlierDetection(policy.outlierDetection, `${field}.outlierDetection`, report);
  checkClientTls(policy.tls, `${field}.tls`, report);
}

function checkConnectionPool(value: unknown, field: string, report: Report): void {
  const pool = asObject(value);
  if (!pool) return;
  const tcp = asObject(pool.tcp);
  if (tcp) {
    checkMinDuration(tcp.connectTimeout, `${field}.tcp.connectTimeout`, report);
    checkMinDuration(tcp.idleTimeout, `${field}.tcp.idleTimeout`, report);
    checkMinDuration(tcp.maxConnectionDuration, `${field}.tcp.maxConnectionDuration`, report);
    const keepalive = asObject(tcp.tcpKeepalive);
    // The kernel counts keepalive time and interval in whole seconds.
    checkMinDuration(keepalive?.time, `${field}.tcp.tcpKeepalive.time`, report, 1000, 'must be at least 1s (the kernel counts keepalive time in seconds)');
    checkMinDuration(keepalive?.interval, `${field}.tcp.tcpKeepalive.interval`, report, 1000, 'must be at least 1s (the kernel counts keepalive intervals in seconds)');
  }
  checkMinDuration(asObject(pool.http)?.idleTimeout, `${field}.http.idleTimeout`, report);
}

function checkOutlierDetection(value: unknown, field: string, report: Report): void {
  const od = asObject(value);
  if (!od) return;
  checkMinDuration(od.interval, `${field}.interval`, report);
  checkMinDuration(od.baseEjectionTime, `${field}.baseEjectionTime`, report);
  if (od.consecutiveErrors !== undefined && od.consecutive5xxErrors !== undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.consecutiveErrors`, 'consecutiveErrors is the deprecated name of consecutive5xxErrors; set only consecutive5xxErrors');
  }
}
