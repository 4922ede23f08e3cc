// End to end: `jibe up` as a user runs it, traffic through the ingress gateway,
// rules applied with `jibe apply`, and the control plane killed under traffic.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../cli/up/ports.ts';
import { JIBE, REPO_ROOT, runJibe } from '../helpers/jibe-cli.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { productpage, sampleServedBy, servedBy } from './fixtures/bookinfo-page.ts';

const NETWORKING = path.join(REPO_ROOT, 'deploy/samples/bookinfo/networking');
const FIXTURES = path.join(REPO_ROOT, 'test/e2e/fixtures');

describe('local mesh (jibe up)', { timeout: 240_000 }, () => {
  let up: ChildProcess;
  let upOutput = '';
  let dataDir: string;
  let gateway: string;
  let server: string;

  const page = (user?: string) => productpage(gateway, user);
  const sample = (n: number, user?: string) => sampleServedBy(gateway, n, user);
  const apply = (file: string) => runJibe(['apply', '--server', server, '-f', file]);
  /** Every proxy runs the control plane's current version. */
  const converged = async () => {
    const res = await runJibe(['proxy-status', '--server', server, '-o', 'json']);
    const { version, proxies } = JSON.parse(res.stdout) as { version: string; proxies: Array<{ syncedVersion?: string; pending: boolean }> };
    return proxies.length === 7 && proxies.every((p) => p.syncedVersion === version && !p.pending);
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-e2e-'));
    const [gw, disc, api] = [await freePort(), await freePort(), await freePort()];
    gateway = `http://127.0.0.1:${gw}`;
    server = `http://127.0.0.1:${api}`;
    up = spawn(process.execPath, [JIBE, 'up', '--data-dir', dataDir, '--gateway-port', String(gw), '--discovery-port', String(disc), '--api-port', String(api)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up.stdout!.on('data', (d) => (upOutput += d));
    up.stderr!.on('data', (d) => (upOutput += d));
    await waitFor(() => upOutput.includes('Press Ctrl-C') || (up.exitCode !== null && Promise.reject(new Error(upOutput))), 'jibe up to be ready', 120_000);
  });

  after(async () => {
    if (up.exitCode === null) {
      up.kill('SIGKILL');
      await new Promise((r) => up.once('exit', r));
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves BookInfo through the ingress gateway, with reviews from every version', async () => {
    const html = await page();
    assert.match(html, /The Comedy of Errors/);
    assert.match(html, /Book Details/);
    const counts = await sample(30);
    assert.deepEqual(Object.keys(counts).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], `round robin over all versions, got ${JSON.stringify(counts)}`);
  });

  /** The `jibe up` table: workload → its sidecar's inbound and metrics ports. */
  const sidecars = () =>
    [...upOutput.matchAll(/^(\S+)\s+\S+\s+(\S+):9080\s+127\.0\.0\.1:\d+\s+:(\d+)\s+:\d+\s+:\d+\s+:(\d+)\s*$/gm)].map((m) => ({ name: m[1], service: m[2], inbound: Number(m[3]), metrics: Number(m[4]) }));
  const labelsOf = (line: string) => Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));

  it('secures every sidecar-to-sidecar hop with mutual TLS (inbound sidecars report connection_security_policy="mutual_tls")', async () => {
    // The previous test's round robin reached reviews v2 and v3, which call ratings.
    const list = sidecars();
    assert.equal(list.length, 6, `six BookInfo sidecars in the jibe up table:\n${upOutput}`);
    const hops = new Map<string, Set<string>>();
    for (const w of list) {
      const text = await (await fetch(`http://127.0.0.1:${w.metrics}/stats/prometheus`, { signal: AbortSignal.timeout(5000) })).text();
      for (const line of text.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="destination"'))) {
        const l = labelsOf(line);
        const hop = `${l.source_app}->${l.destination_app}`;
        if (!hops.has(hop)) hops.set(hop, new Set());
        hops.get(hop)!.add(`${l.connection_security_policy} ${l.source_principal}`);
      }
    }
    const seen = Object.fromEntries([...hops].map(([k, v]) => [k, [...v].sort()]));
    for (const [hop, source] of [['productpage->details', 'productpage'], ['productpage->reviews', 'productpage'], ['reviews->ratings', 'reviews']]) {
      assert.ok(hops.has(hop), `the ${hop} hop was served: ${JSON.stringify(seen)}`);
      assert.deepEqual([...hops.get(hop)!], [`mutual_tls spiffe://cluster.local/ns/default/sa/bookinfo-${source}`], `${hop} over mTLS with the caller's verified identity: ${JSON.stringify(seen)}`);
    }
    for (const [hop, policies] of hops) for (const p of policies) assert.match(p, /^mutual_tls spiffe:\/\//, `${hop}: ${p}`);
  });

  it('refuses a plaintext client at a workload once a STRICT PeerAuthentication applies, while the mesh keeps serving', async () => {
    const reviews = sidecars().find((w) => w.service === 'reviews')!;
    // A new connection each time: the mode is decided per connection, when it is accepted.
    const direct = () =>
      new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: reviews.inbound, path: '/reviews/0', agent: false, timeout: 5000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
      });
    assert.equal(await direct(), 200, 'PERMISSIVE (the default) still takes plaintext');
    const strict = path.join(FIXTURES, 'peer-authentication-strict.yaml');
    const res = await apply(strict);
    assert.equal(res.code, 0, res.stderr);
    await waitFor(converged, 'proxies to ACK STRICT mTLS');
    await assert.rejects(direct(), /socket hang up|ECONNRESET/);
    assert.match(await page(), /Book Reviews/, 'the mesh itself speaks mTLS, so BookInfo keeps working');
    const removed = await runJibe(['delete', '--server', server, '-f', strict]);
    assert.equal(removed.code, 0, removed.stderr);
    await waitFor(converged, 'proxies to ACK the removal');
  });

  it('splits reviews 80/20 between v1 and v3', async () => {
    const res = await apply(path.join(FIXTURES, 'reviews-80-v1-20-v3.yaml'));
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /VirtualService\/default\/reviews (created|configured)/);
    await waitFor(converged, 'proxies to ACK the split');
    const n = 200;
    const counts = await sample(n);
    assert.equal((counts['reviews-v1'] ?? 0) + (counts['reviews-v3'] ?? 0), n, `only v1 and v3: ${JSON.stringify(counts)}`);
    // Binomial(200, 0.2): sd ≈ 5.7; ±20 is 3.5 sd.
    assert.ok(Math.abs((counts['reviews-v3'] ?? 0) - 40) <= 20, `v3 share near 20%: ${JSON.stringify(counts)}`);
  });

  it('routes end-user jason to v2 and everyone else to v1', async () => {
    const res = await apply(path.join(NETWORKING, 'virtual-service-reviews-test-v2.yaml'));
    assert.equal(res.code, 0, res.stderr);
    await waitFor(converged, 'proxies to ACK the header route');
    assert.deepEqual(await sample(10, 'jason'), { 'reviews-v2': 10 });
    assert.deepEqual(await sample(10), { 'reviews-v1': 10 });
  });

  it('rejects an invalid rule whole, naming file and field, and keeps routing', async () => {
    const before = await runJibe(['proxy-status', '--server', server, '-o', 'json']);
    const file = path.join(FIXTURES, 'reviews-bad-subset.yaml');
    const res = await apply(file);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /JIBE_ERR_/);
    assert.match(res.stderr, /v9/);
    assert.match(res.stderr, /reviews-bad-subset\.yaml/);
    assert.match(res.stderr, /spec\.http\[0\]\.route\[0\]/);
    const afterStatus = await runJibe(['proxy-status', '--server', server, '-o', 'json']);
    assert.equal(JSON.parse(afterStatus.stdout).version, JSON.parse(before.stdout).version, 'no new config version');
    assert.deepEqual(await sample(5, 'jason'), { 'reviews-v2': 5 });
  });

  it('keeps serving with no failed request while the control plane is killed and restarted', async () => {
    const pids = JSON.parse(fs.readFileSync(path.join(dataDir, 'processes.json'), 'utf8')) as Record<string, number>;
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          const version = servedBy(await page('jason'));
          if (version === 'reviews-v2') ok++;
          else failures.push(`served by ${version}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    await waitFor(() => ok >= 20, 'traffic before the kill');
    process.kill(pids['control-plane'], 'SIGKILL');
    // jibe up restarts it; the proxies reconnect and resync from the persisted config.
    await waitFor(() => upOutput.includes('control-plane exited'), 'jibe up to notice the control plane died');
    const okAtKill = ok;
    await waitFor(converged, 'proxies to reconnect to the restarted control plane', 60_000);
    await waitFor(() => ok >= okAtKill + 20, 'traffic after the restart');
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    const status = JSON.parse((await runJibe(['get', 'vs', 'reviews', '--server', server, '-o', 'json'])).stdout);
    assert.equal(status[0].spec.http[0].match[0].headers['end-user'].exact, 'jason', 'rules survived the restart');
  });

  it('stops every process it started on Ctrl-C', async () => {
    const pids = Object.values(JSON.parse(fs.readFileSync(path.join(dataDir, 'processes.json'), 'utf8')) as Record<string, number>);
    up.kill('SIGINT');
    const code = await new Promise((r) => up.once('exit', r));
    assert.equal(code, 0, upOutput);
    assert.match(upOutput, /Stopped\./);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, [], 'no process left behind');
  });
});
