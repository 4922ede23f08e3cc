// What a Gateway's schema cannot say: host forms, known protocols, TLS settings
// that can work (./tls.ts), unique server names.
import type { Report, SpecCheck } from './check-context.ts';
import { asArray, asObject, eachObject } from './check-context.ts';
import { checkLabelName, checkProtocol, checkUnique } from './check-common.ts';
import { hostProblem, isDns1123Label } from '../names.ts';
import { checkServerTls } from './tls.ts';

export const checkGateway: SpecCheck = (spec, report) => {
  eachObject(spec.servers, 'spec.servers', (server, field) => {
    const port = asObject(server.port);
    if (port) {
      checkProtocol(port.protocol, `${field}.port.protocol`, report);
      checkLabelName(port.name, `${field}.port.name`, report, 'port name');
    }
    asArray(server.hosts).forEach((host, i) => checkServerHost(host, `${field}.hosts[${i}]`, report));
    checkServerTls(server, field, report);
  });
  checkUnique(spec.servers, 'spec.servers', 'name', 'server name', report);
};

/** `host` or `namespace/host`, where namespace is `*`, `.` or a namespace name. */
function checkServerHost(value: unknown, field: string, report: Report): void {
  if (typeof value !== 'string') return;
  const parts = value.split('/');
  const hint = '(use "host" or "namespace/host", e.g. "*", "bookinfo.example.com", "prod/*.example.com")';
  if (parts.length > 2) {
    report('JIBE_ERR_SCHEMA', field, `invalid host ${JSON.stringify(value)}: more than one "/" ${hint}`);
    return;
  }
  if (parts.length === 2 && parts[0] !== '*' && parts[0] !== '.' && !isDns1123Label(parts[0])) {
    report('JIBE_ERR_SCHEMA', field, `invalid namespace ${JSON.stringify(parts[0])} in host ${JSON.stringify(value)}: use "*", "." or a namespace name ${hint}`);
  }
  const problem = hostProblem(parts[parts.length - 1]);
  if (problem) report('JIBE_ERR_SCHEMA', field, `invalid host ${JSON.stringify(value)}: ${problem} ${hint}`);
}
