// What a DestinationRule's schema cannot say: unique, well-formed subset names,
// one load-balancing choice, one hash key, TLS settings that can work.
import type { Report, SpecCheck } from './check-context.ts';
import { asObject, eachObject } from './check-context.ts';
import { checkExportTo, checkHost, checkLabelName, checkUnique } from './check-common.ts';

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
    }
  }
  const tls = asObject(policy.tls);
  if (tls?.mode === 'MUTUAL' && tls.credentialName === undefined && (tls.clientCertificate === undefined || tls.privateKey === undefined)) {
    report('JIBE_ERR_SCHEMA', `${field}.tls`, 'MUTUAL TLS needs credentialName, or clientCertificate and privateKey');
  }
}
