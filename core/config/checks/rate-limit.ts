// What a RateLimit's schema cannot say: a host that names one service, one
// bucket key per limit, fill intervals Envoy-style buckets accept, matches
// that compile, and limit names that tell the limits apart in 429 answers.
import type { Report, SpecCheck } from './check-context.ts';
import { asObject, eachEntry, eachObject, listWords } from './check-context.ts';
import { checkHeaderName, checkHost, checkMinDuration, checkStringMatch, checkUnique } from './check-common.ts';
import { MIN_FILL_INTERVAL_MS } from '../../model/rate-limit.ts';

const KEYS = ['header', 'sourcePrincipal', 'sourceIp'];

export const checkRateLimit: SpecCheck = (spec, report) => {
  // Buckets live in the destination's sidecar: the host must be one service, not a pattern.
  checkHost(spec.host, 'spec.host', report, { wildcard: false });
  eachObject(spec.limits, 'spec.limits', (limit, field) => checkLimit(limit, field, report));
  checkUnique(spec.limits, 'spec.limits', 'name', 'limit name', report);
};

function checkLimit(limit: Record<string, unknown>, field: string, report: Report): void {
  checkMinDuration(limit.fillInterval, `${field}.fillInterval`, report, MIN_FILL_INTERVAL_MS, `must be at least ${MIN_FILL_INTERVAL_MS}ms`);
  eachObject(limit.match, `${field}.match`, (m, f) => {
    checkStringMatch(m.uri, `${f}.uri`, report);
    checkStringMatch(m.method, `${f}.method`, report);
    eachEntry(m.headers, `${f}.headers`, (name, value, hf) => {
      checkHeaderName(name, hf, report);
      checkStringMatch(value, hf, report, { allowEmpty: true });
    });
  });
  const per = asObject(limit.per);
  if (per) {
    const set = KEYS.filter((k) => per[k] !== undefined);
    if (set.length !== 1) {
      report('JIBE_ERR_SCHEMA', `${field}.per`, `set exactly one of header, sourcePrincipal or sourceIp${set.length ? `, not ${listWords(set)}` : ''}`);
    }
    checkHeaderName(per.header, `${field}.per.header`, report);
  }
}
