// The access log's hand-built lines must say exactly what a JSON serializer
// would: same fields, same order as pino's `logger.info(entry, 'access')`,
// escaping wherever a value needs it, and times equal to Date's ISO form.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import { createAccessLog, formatJsonLine, formatTextLine } from '../../../../proxy/telemetry/access-log.ts';
import { isoTime } from '../../../../proxy/telemetry/access-log-time.ts';
import type { AccessLogEntry } from '../../../../proxy/telemetry/access-log.ts';

function entry(overrides: Partial<AccessLogEntry> = {}): AccessLogEntry {
  return {
    startMs: Date.UTC(2026, 10, 22, 5, 8, 25, 7) + 0.75,
    nowMs: Date.UTC(2026, 10, 22, 5, 8, 26, 120) + 0.5,
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1?x=1',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    bytes_received: 0,
    bytes_sent: 1024,
    duration_ms: 1.234,
    upstream_host: '127.0.0.1:9080',
    upstream_cluster: 'outbound|9080||reviews.default.svc.cluster.local',
    route_name: 'reviews',
    x_request_id: 'c8a1b2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b',
    trace_id: '',
    downstream_remote_address: '127.0.0.1:45678',
    identity: {
      source_workload: 'productpage-v1',
      source_workload_namespace: 'default',
      source_principal: 'unknown',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'default',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/reviews',
      destination_service: 'reviews.default.svc.cluster.local',
      reporter: 'source',
    },
    ...overrides,
  };
}

/** What the line must parse to: the entry's fields with pino's level/time/msg and ISO start time. */
function expected(e: AccessLogEntry): Record<string, unknown> {
  const { startMs, nowMs, identity, user_agent, grpc_status, authz_policy, authz_result, ...fields } = e;
  const out: Record<string, unknown> = { level: 30, time: new Date(nowMs).toISOString(), start_time: new Date(startMs).toISOString(), ...fields };
  for (const [k, v] of Object.entries(identity)) out[k.replace('_workload_namespace', '_namespace')] = v;
  for (const [k, v] of Object.entries({ user_agent, grpc_status, authz_policy, authz_result })) if (v !== undefined) out[k] = v;
  out.msg = 'access';
  return out;
}

test('a JSON line parses to the entry, in pino field order, ending in a newline', () => {
  const e = entry({ user_agent: 'fortio.org/fortio-1.69.0', grpc_status: '14', authz_policy: 'AuthorizationPolicy/default/deny-all', authz_result: 'denied' });
  const line = formatJsonLine(e);
  assert.ok(line.endsWith('}\n'));
  const parsed = JSON.parse(line) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed), Object.keys(expected(e)));
  assert.deepEqual(parsed, expected(e));
  assert.equal(parsed.start_time, '2026-11-22T05:08:25.007Z');
});

test('consecutive lines to different upstreams and callers each carry their own (the last fragments are not reused blindly)', () => {
  const a = entry();
  const b = entry({
    upstream_host: '10.0.0.2:9080', upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local', route_name: 'reviews-"v2"',
    identity: { ...a.identity, source_workload: 'ratings-v1', reporter: 'destination' },
  });
  const c = entry({ upstream_host: '', upstream_cluster: '', route_name: '' });
  for (const e of [a, a, b, a, c, b, b, c]) assert.deepEqual(JSON.parse(formatJsonLine(e)), expected(e));
});

test('values that need escaping are escaped; optional fields left undefined are absent', () => {
  const nasty = 'a"b\\c\nd\u0001e\ud800f/é';
  const e = entry({ path: `/x?q=${nasty}`, authority: nasty, user_agent: nasty, x_request_id: '' });
  const parsed = JSON.parse(formatJsonLine(e)) as Record<string, unknown>;
  assert.equal(parsed.path, `/x?q=${nasty}`);
  assert.equal(parsed.authority, nasty);
  assert.equal(parsed.user_agent, nasty);
  assert.equal('grpc_status' in parsed, false);
  assert.equal('authz_policy' in parsed, false);
  assert.equal(formatJsonLine(e), JSON.stringify(expected(e)) + '\n');
});

test('a line is byte for byte JSON.stringify of its fields: numbers, durations, times, escapes and non-ASCII alike', () => {
  const second = Date.UTC(2026, 11, 31, 23, 59, 59, 0);
  const cases: Array<Partial<AccessLogEntry>> = [
    {},
    { duration_ms: 0 }, { duration_ms: 0.001 }, { duration_ms: 0.5 }, { duration_ms: 1.23 }, { duration_ms: 12 }, { duration_ms: 1234.567 }, { duration_ms: 60_000.01 },
    { duration_ms: 1 / 3 }, { duration_ms: 1e21 }, { response_code: 0 }, { response_code: 503 }, { bytes_received: 9_007_199_254_740_991 }, { bytes_sent: 10 },
    { startMs: second + 999.9, nowMs: second + 1000.2 }, { startMs: second + 5, nowMs: second + 5 }, { nowMs: second + 99.5 },
    { path: '/ünïcödé/日本語', authority: 'xn--bcher-kva.example', user_agent: 'curl/8 😀' },
    { path: '/a\u007fb', x_request_id: '\t', trace_id: '0af7651916cd43dd8448eb211c80319c' },
    { response_flags: 'UF,URX', grpc_status: '14', authz_policy: 'ns/deny "x"', authz_result: 'denied' },
    { upstream_host: '[::1]:9080', route_name: 'r\u2028', identity: { ...entry().identity, source_principal: 'spiffe://td/ns/é/sa/"q"' } },
  ];
  for (const overrides of cases) {
    const e = entry(overrides);
    assert.equal(formatJsonLine(e), JSON.stringify(expected(e)) + '\n', JSON.stringify(overrides));
  }
});

test('isoTime equals Date#toISOString across seconds, with fractional and sub-100 milliseconds', () => {
  const base = Date.UTC(2026, 0, 1, 23, 59, 59, 0);
  for (const ms of [base, base + 5.9, base + 99.99, base + 999.5, base + 1000, base + 1042.25, base - 86_400_000 + 3, base]) {
    assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
  }
});

test('the text line is Envoy\'s default format with Istio\'s additions', () => {
  const line = formatTextLine(entry({ user_agent: 't/1' }));
  assert.equal(
    line,
    '[2026-11-22T05:08:25.007Z] "GET /reviews/1?x=1 HTTP/1.1" 200 - 0 1024 1 "127.0.0.1:45678" "t/1" "c8a1b2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b" "reviews:9080" "127.0.0.1:9080" ' +
      'outbound|9080||reviews.default.svc.cluster.local reviews trace=- src=productpage-v1.default dst=spiffe://cluster.local/ns/default/sa/reviews\n',
  );
});

test('a destination passed in gets each line as it is made', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  }) as unknown as DestinationStream;
  const log = createAccessLog('json', sink);
  Object.assign(log.next(), entry());
  log.commit();
  Object.assign(log.next(), entry({ response_code: 503 }));
  log.commit();
  log.close();
  assert.equal(lines.length, 2);
  assert.equal((JSON.parse(lines[1]) as { response_code: number }).response_code, 503);
});

test('on stdout, every committed entry becomes its own line, in order, though the log hands out its entries again', () => {
  // In a child process, whose stdout is a pipe: entries wait in a ring and are formatted in groups, and the entries
  // `next` gives are refilled once their lines are made. 1000 lines cross many groups and several 64 KiB batches.
  const script = `
    import { createAccessLog } from ${JSON.stringify(new URL('../../../../proxy/telemetry/access-log.ts', import.meta.url).pathname)};
    const entry = JSON.parse(process.argv[1]);
    const log = createAccessLog('json');
    for (let i = 0; i < 1000; i++) {
      Object.assign(log.next(), entry, { response_code: 200 + (i % 300), bytes_sent: i, path: '/item/' + i });
      log.commit();
    }
    process.stderr.write(String(process.stdout.bytesWritten));
    log.close();
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(entry())], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(child.status, 0, child.stderr);
  // The ring is bounded: most lines went out while entries were still coming, not all at close.
  assert.ok(Number(child.stderr) > child.stdout.length / 2, `${child.stderr} of ${child.stdout.length} bytes written before close`);
  const lines = child.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1000);
  lines.forEach((line, i) => {
    const e = entry({ response_code: 200 + (i % 300), bytes_sent: i, path: '/item/' + i });
    assert.equal(line + '\n', formatJsonLine(e), `line ${i}`);
  });
});
