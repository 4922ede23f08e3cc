// What a WorkloadEntry's schema cannot say: an address that can be dialled,
// port names that are names. ServiceEntry endpoints share these checks.
import type { Report, SpecCheck } from './check-context.ts';
import { asString, eachEntry } from './check-context.ts';
import { hostProblem, isDns1123Label, isDns1123Subdomain, LABEL_RULE, SUBDOMAIN_RULE } from '../names.ts';
import { isIP } from 'node:net';

export const checkWorkloadEntry: SpecCheck = (spec, report) => checkWorkload(spec, 'spec', report, { unixSocket: false });

/**
 * `address` is required unless `network` is set (the workload is then reached
 * through that network's gateway). `addressKind` narrows what it may be.
 */
export function checkWorkload(
  w: Record<string, unknown>,
  field: string,
  report: Report,
  opts: { unixSocket: boolean; addressKind?: 'ip' | 'any' },
): void {
  const address = asString(w.address);
  if ((address === undefined || address === '') && w.network === undefined) {
    report('JIBE_ERR_SCHEMA', `${field}.address`, 'address is required (an IP address or DNS name), unless network is set');
  } else if (address) {
    if (address.startsWith('unix://')) {
      if (!opts.unixSocket) report('JIBE_ERR_SCHEMA', `${field}.address`, 'a unix socket address is allowed only in a ServiceEntry\'s endpoints with STATIC resolution');
      else if (address.length === 'unix://'.length) report('JIBE_ERR_SCHEMA', `${field}.address`, 'unix:// needs a socket path');
    } else if (opts.addressKind === 'ip' && !isIP(address)) {
      report('JIBE_ERR_SCHEMA', `${field}.address`, `address ${JSON.stringify(address)} must be an IP address with STATIC resolution (use DNS resolution for host names)`);
    } else if (!isIP(address)) {
      const problem = hostProblem(address, { wildcard: false });
      if (problem) report('JIBE_ERR_SCHEMA', `${field}.address`, `invalid address ${JSON.stringify(address)}: ${problem}`);
    }
  }
  eachEntry(w.ports, `${field}.ports`, (name, _port, f) => {
    if (!isDns1123Label(name)) report('JIBE_ERR_SCHEMA', f, `invalid port name ${JSON.stringify(name)}: use ${LABEL_RULE}`);
  });
  const sa = asString(w.serviceAccount);
  if (sa !== undefined && !isDns1123Subdomain(sa)) {
    report('JIBE_ERR_SCHEMA', `${field}.serviceAccount`, `invalid service account ${JSON.stringify(sa)}: use ${SUBDOMAIN_RULE}`);
  }
}
