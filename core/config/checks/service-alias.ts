// What a ServiceAlias's schema cannot say: the canonical host is one mesh
// service (no wildcard), alias names and namespaces are DNS labels (they become
// host names), a datacenter only means something on Consul, and no entry is
// listed twice. Aliases claimed by two ServiceAliases are a property of the
// whole config: `jibe analyze` reports them, the oldest rule wins.
import type { SpecCheck } from './check-context.ts';
import { asString, eachObject } from './check-context.ts';
import { checkHost, checkLabelName } from './check-common.ts';

export const checkServiceAlias: SpecCheck = (spec, report) => {
  checkHost(spec.host, 'spec.host', report, { wildcard: false });
  const seen = new Set<string>();
  eachObject(spec.aliases, 'spec.aliases', (alias, field) => {
    checkLabelName(alias.name, `${field}.name`, report, 'service name');
    checkLabelName(alias.namespace, `${field}.namespace`, report, 'namespace');
    if (alias.datacenter !== undefined && alias.platform !== 'consul') {
      report('JIBE_ERR_SCHEMA', `${field}.datacenter`, `datacenter only applies to consul aliases (this one is ${JSON.stringify(alias.platform)}); remove it`);
    }
    const key = [alias.platform, alias.name, alias.namespace ?? '', alias.datacenter ?? ''].map((v) => asString(v) ?? '').join('|');
    if (seen.has(key)) report('JIBE_ERR_DUPLICATE', field, `the alias ${alias.platform}/${String(alias.name)} is listed twice; keep one`);
    seen.add(key);
  });
};
