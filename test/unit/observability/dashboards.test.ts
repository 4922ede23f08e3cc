// Every Grafana dashboard in deploy/observability parses, and every PromQL
// query in it names only metrics and labels the proxies export: a renamed
// metric or label fails here instead of showing an empty panel to operators.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IstioMetrics } from '../../../proxy/telemetry/istio-metrics.ts';
import { ISTIO_LABELS } from '../../../proxy/telemetry/telemetry-labels.ts';

const DIR = fileURLToPath(new URL('../../../deploy/observability/grafana/', import.meta.url));
const PROMQL_FUNCTIONS = new Set(['sum', 'rate', 'increase', 'histogram_quantile', 'round', 'by', 'without', 'label_values', 'le', 'avg', 'max', 'min', 'count', 'topk', 'irate']);

function exportedNames(): Set<string> {
  const names = new Set<string>();
  for (const metric of new IstioMetrics().registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

function queriesOf(dashboard: { panels: Array<{ targets?: Array<{ expr: string }> }>; templating?: { list: Array<{ query?: unknown }> } }): string[] {
  const out: string[] = [];
  for (const p of dashboard.panels) for (const t of p.targets ?? []) out.push(t.expr);
  for (const v of dashboard.templating?.list ?? []) if (typeof v.query === 'string' && v.query.includes('(')) out.push(v.query);
  return out;
}

/** Identifiers of a PromQL expression: metric names outside braces, label names inside braces and in by(…). */
function identifiers(expr: string): { metrics: string[]; labels: string[] } {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  const metrics: string[] = [];
  const labels: string[] = [];
  for (const m of withoutStrings.matchAll(/\{([^}]*)\}/g)) for (const l of m[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) labels.push(l[1]);
  for (const m of withoutStrings.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const l of m[1].split(',')) labels.push(l.trim());
  for (const m of withoutStrings.matchAll(/label_values\([^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\)/g)) labels.push(m[1]);
  const outside = withoutStrings.replace(/label_values\(([^,]*),[^)]*\)/g, '$1').replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/\b(?:by|without)\s*\([^)]*\)/g, '');
  for (const m of outside.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) if (!PROMQL_FUNCTIONS.has(m[0]) && !/^\d/.test(m[0])) metrics.push(m[0]);
  return { metrics, labels };
}

const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

test('the dashboards are there: mesh overview, service, workload', () => {
  for (const name of ['jibe-mesh-overview.json', 'jibe-service.json', 'jibe-workload.json']) assert.ok(files.includes(name), name);
});

for (const file of files) {
  test(`${file} parses and queries only exported metrics and labels`, () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
    assert.equal(typeof dashboard.uid, 'string');
    const queries = queriesOf(dashboard);
    assert.ok(queries.length > 0);
    const metrics = exportedNames();
    const labels = new Set<string>([...ISTIO_LABELS, 'le']);
    for (const q of queries) {
      const ids = identifiers(q);
      for (const m of ids.metrics) assert.ok(metrics.has(m), `${file}: unknown metric ${m} in ${q}`);
      for (const l of ids.labels) assert.ok(labels.has(l), `${file}: unknown label ${l} in ${q}`);
    }
  });
}

test('the checker catches a misspelt metric and label', () => {
  const ids = identifiers('sum(rate(istio_request_total{destination_svc="x"}[1m])) by (source_wl)');
  assert.ok(!exportedNames().has(ids.metrics[0]));
  assert.deepEqual(ids.labels.filter((l) => !(ISTIO_LABELS as readonly string[]).includes(l)), ['destination_svc', 'source_wl']);
});
