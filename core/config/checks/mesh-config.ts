// What a MeshConfig's schema cannot say about its own spec. Where it may live
// (the root namespace, one per mesh) is a property of the whole config and is
// checked in validate-apply.ts.
import type { SpecCheck } from './check-context.ts';
import { asObject, asString, eachObject } from './check-context.ts';
import type { Report } from './check-context.ts';
import { checkHeaderName, checkMinDuration, checkUnique } from './check-common.ts';
import { EXTENSION_PROVIDER_FIELDS } from '../../model/policy-adapter.ts';
import { parseConditionKey } from '../../model/security.ts';

export const checkMeshConfig: SpecCheck = (spec, report) => {
  const budget = asObject(spec.defaultRetryBudget);
  // A window under a second makes minRetriesPerSecond meaningless (Linkerd bounds ttl to 1s..60s).
  checkMinDuration(budget?.ttl, 'spec.defaultRetryBudget.ttl', report, 1000, 'must be at least 1s');
  const zipkin = asString(asObject(spec.tracing)?.zipkinAddress);
  if (zipkin !== undefined && zipkin !== '' && !collectorAddressOk(zipkin)) {
    report('JIBE_ERR_SCHEMA', 'spec.tracing.zipkinAddress', `${JSON.stringify(zipkin)} is not a collector address: use host:port (zipkin.jibe-system:9411) or an http(s) URL`);
  }
  checkUnique(spec.extensionProviders, 'spec.extensionProviders', 'name', 'extension provider name', report);
  eachObject(spec.extensionProviders, 'spec.extensionProviders', (p, field) => checkExtensionProvider(p, field, report));
};

const KIND_FIELDS = EXTENSION_PROVIDER_FIELDS.map(([f]) => f);

function checkExtensionProvider(p: Record<string, unknown>, field: string, report: Report): void {
  const kinds = KIND_FIELDS.filter((k) => p[k] !== undefined);
  if (kinds.length !== 1) {
    const what = kinds.length === 0 ? 'names no kind' : `names ${kinds.join(' and ')}`;
    report('JIBE_ERR_SCHEMA', field, `an extension provider ${what}: give exactly one of ${KIND_FIELDS.join(', ')}`);
    return;
  }
  const ext = asObject(p.envoyExtAuthzHttp);
  if (ext) {
    checkMinDuration(ext.timeout, `${field}.envoyExtAuthzHttp.timeout`, report);
    for (const list of ['includeRequestHeadersInCheck', 'headersToUpstreamOnAllow', 'headersToDownstreamOnDeny']) {
      const names = ext[list];
      if (Array.isArray(names)) names.forEach((h, i) => checkHeaderName(h, `${field}.envoyExtAuthzHttp.${list}[${i}]`, report));
    }
    const service = asString(ext.service);
    if (service !== undefined && /[\s?#@]|:\/\//.test(service)) {
      report('JIBE_ERR_SCHEMA', `${field}.envoyExtAuthzHttp.service`, `${JSON.stringify(service)} is not a host: write [<namespace>/]<host> (ext-authz.foo.svc.cluster.local) and the port in port`);
    }
  }
  const list = asObject(p.list);
  checkAttribute(list?.attribute, `${field}.list.attribute`, report);
  const quota = asObject(p.quota);
  checkAttribute(quota?.key, `${field}.quota.key`, report);
  checkMinDuration(quota?.fillInterval, `${field}.quota.fillInterval`, report);
}

/** Adapters read Istio's condition keys (`source.ip`, `request.headers[x-api-key]`). */
function checkAttribute(value: unknown, field: string, report: Report): void {
  const key = asString(value);
  if (key !== undefined && key !== '' && parseConditionKey(key) === undefined) {
    report('JIBE_ERR_SCHEMA', field, `unknown attribute ${JSON.stringify(key)}: use an AuthorizationPolicy condition key such as source.ip or request.headers[x-api-key]`);
  }
}

/** What the proxies' Zipkin reporter accepts: an http(s) URL, or host:port (IPv6 in brackets). */
function collectorAddressOk(address: string): boolean {
  if (/^https?:\/\//.test(address)) return URL.canParse(address);
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535 && URL.canParse(`http://${address}/`);
}
