// What a DestinationRule's schema cannot say: unique, well-formed subset names,
// one load-balancing choice, one hash key, timeouts and intervals Envoy accepts,
// TLS settings that can work.
import type { Report, SpecCheck } from './check-context.ts';
import { asObject, eachObject } from './check-context.ts';
import { checkExportTo, checkHeaderName, checkHost, checkLabelName, checkMinDuration, checkUnique } from './check-common.ts';

export const checkDestinationRule: SpecCheck = (spec, report) => {
  checkHost(spec.host, 'spec.host', report);
  checkTrafficPolicy(spec.trafficPolicy, 'spec.trafficPolicy', report);
  eachObject(spec.subsets, 'spec.subsets', (subset, field) => {
    checkLabelName(subset.name, `${field}.name`, report, 'subset name');
    checkTrafficPolicy(subset.trafficPolicy, `${field}.trafficPolicy`, report);
  });
  checkUnique(spec.subsets, 'spec.subsets', 'name', 'subset name', report);
  checkExportTo(spec.exportTo, 'spec.exportTo', report);
};

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
  }
  checkConnectionPool(policy.connectionPool, `${field}.connectionPool`, report);
  checkOutlierDetection(policy.outlierDetection, `${field}.outlierDetection`, report);
  const tls = asObject(policy.tls);
  if (tls?.mode === 'MUTUAL' && tls.credentialName === undefined && (tls.clientCertificate === undefined || tls.privateKey === undefined)) {
    report('JIBE_ERR_SCHEMA', `${field}.tls`, 'MUTUAL TLS needs credentialName, or clientCertificate and privateKey');
  }
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
