// What a ServiceEntry's schema cannot say: concrete hosts where DNS must resolve
// them, unique ports, endpoints consistent with the resolution mode.
import type { SpecCheck } from './check-context.ts';
import { asArray, asObject, asString, eachEntry, eachObject } from './check-context.ts';
import { checkExportTo, checkHost, checkLabelName, checkProtocol, checkUnique } from './check-common.ts';
import { checkWorkload } from './workload-entry.ts';
import { isIpOrCidr } from '../names.ts';

export const checkServiceEntry: SpecCheck = (spec, report) => {
  const resolution = asString(spec.resolution) ?? 'NONE';
  const endpoints = asArray(spec.endpoints);
  asArray(spec.hosts).forEach((host, i) => {
    if (host === '*') {
      report('JIBE_ERR_SCHEMA', `spec.hosts[${i}]`, 'host "*" is not allowed in a ServiceEntry; name the hosts, or use a wildcard like *.example.com');
      return;
    }
    checkHost(host, `spec.hosts[${i}]`, report);
    if (typeof host === 'string' && host.startsWith('*.') && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && endpoints.length === 0) {
      report('JIBE_ERR_SCHEMA', `spec.hosts[${i}]`, `wildcard host ${JSON.stringify(host)} cannot be resolved by DNS; list endpoints or use resolution NONE`);
    }
  });
  asArray(spec.addresses).forEach((a, i) => {
    if (typeof a === 'string' && !isIpOrCidr(a)) report('JIBE_ERR_SCHEMA', `spec.addresses[${i}]`, `invalid address ${JSON.stringify(a)} (use an IP address or CIDR block like 192.0.2.0/24)`);
  });
  eachObject(spec.ports, 'spec.ports', (port, field) => {
    checkLabelName(port.name, `${field}.name`, report, 'port name');
    checkProtocol(port.protocol, `${field}.protocol`, report);
  });
  checkUnique(spec.ports, 'spec.ports', 'number', 'port number', report);
  checkUnique(spec.ports, 'spec.ports', 'name', 'port name', report);

  if (endpoints.length && spec.workloadSelector !== undefined) {
    report('JIBE_ERR_SCHEMA', 'spec.workloadSelector', 'endpoints and workloadSelector are mutually exclusive; keep one of them');
  }
  if (endpoints.length && resolution === 'NONE') {
    report('JIBE_ERR_SCHEMA', 'spec.endpoints', 'resolution NONE forwards to the address the client dialled, so endpoints are not used; remove them or set resolution STATIC or DNS');
  }
  const portNames = new Set(asArray(spec.ports).map((p) => asObject(p)?.name).filter((n) => typeof n === 'string'));
  eachObject(spec.endpoints, 'spec.endpoints', (endpoint, field) => {
    checkWorkload(endpoint, field, report, { unixSocket: resolution === 'STATIC', addressKind: resolution === 'STATIC' ? 'ip' : 'any' });
    eachEntry(endpoint.ports, `${field}.ports`, (name, _port, f) => {
      if (!portNames.has(name)) report('JIBE_ERR_SCHEMA', f, `port ${JSON.stringify(name)} is not one of this ServiceEntry's spec.ports names${portNames.size ? ` (${[...portNames].join(', ')})` : ''}`);
    });
  });
  checkExportTo(spec.exportTo, 'spec.exportTo', report);
};
