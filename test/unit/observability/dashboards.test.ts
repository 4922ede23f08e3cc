// Every Grafana dashboard in deploy/observability parses, and every PromQL
// query in it names only metrics and labels the mesh exports (the proxies'
// for the traffic dashboards, the control plane's for its own): a renamed
// metric or label fails here instead of showing an empty panel to operators.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { ControlPlaneMetrics } from '../../../core/telemetry/control-plane-metrics.ts';
import { IstioMetrics } from '../../../proxy/telemetry/istio-metrics.ts';
import { ISTIO_LABELS } from '../../../proxy/telemetry/telemetry-labels.ts';

const DIR = fileURLToPath(new URL('../../../deploy/observability/grafana/', import.meta.url));
const PROMQL_FUNCTIONS = new Set(['sum', 'rate', 'increase', 'histogram_quantile', 'round', 'by', 'without', 'label_values', 'le', 'avg', 'max', 'min', 'count', 'topk', 'irate']);

const PROXY_REGISTRY = await new IstioMetrics().prometheusRegistry();

function exportedNames(registry: Registry = PROXY_REGISTRY): Set<string> {
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

function controlPlaneExports(): { metrics: Set<string>; labels: Set<string> } {
  const registry = new ControlPlaneMetrics({ proxies: () => [], registrySizes: () => ({}) }).registry;
  // `instance` and `job` are the labels Prometheus gives every scraped target.
  const labels = new Set<string>(['le', 'instance', 'job']);
  for (const metric of registry.getMetricsAsArray()) for (const l of (metric as unknown as { labelNames?: string[] }).labelNames ?? []) labels.add(l);
  return { metrics: exportedNames(registry), labels };
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

test('the dashboards are there: mesh overview, service, workload, control plane', () => {
  for (const name of ['jibe-mesh-overview.json', 'jibe-service.json', 'jibe-workload.json', 'jibe-control-plane.json']) assert.ok(files.includes(name), name);
});

const CONTROL_PLANE_DASHBOARDS = new Set(['jibe-control-plane.json']);

for (const file of files) {
  test(`${file} parses and queries only exported metrics and labels`, () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
    assert.equal(typeof dashboard.uid, 'string');
    const queries = queriesOf(dashboard);
    assert.ok(queries.length > 0);
    const { metrics, labels } = CONTROL_PLANE_DASHBOARDS.has(file) ? controlPlaneExports() : { metrics: exportedNames(), labels: new Set<string>([...ISTIO_LABELS, 'le']) };
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

test('the control plane checker knows its metrics and catches a proxy metric on its dashboard', () => {
  const { metrics, labels } = controlPlaneExports();
  for (const m of ['pilot_xds', 'pilot_xds_pushes', 'pilot_total_xds_rejects', 'pilot_xds_push_errors', 'pilot_proxy_convergence_time_bucket', 'citadel_server_success_cert_issuance_count', 'jibe_registry_services']) {
    assert.ok(metrics.has(m), m);
  }
  for (const l of ['type', 'reason', 'kind', 'platform']) assert.ok(labels.has(l), l);
  assert.ok(!metrics.has('istio_requests_total'));
  assert.ok(!labels.has('destination_service_name'));
});
