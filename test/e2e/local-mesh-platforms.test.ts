// End to end: `jibe up --platforms vm,consul` — a Consul dev agent from the
// peer cache beside the control plane, BookInfo's ratings registered in Consul
// with its Jibe sidecar, the rest on the vm platform; the mixed path
// (reviews on vm → ratings on Consul) carries traffic over mTLS, `jibe analyze`
// is clean, and stopping the mesh stops Consul too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../cli/up/ports.ts';
import { peerBinary } from '../peers/paths.ts';
import { JIBE, REPO_ROOT, runJibe } from '../helpers/jibe-cli.ts';
import { waitFor } from '../helpers/wait-for.ts';

const skip = peerBinary('consul') || process.env.CI === 'true' ? false : 'consul is not installed (node_modules/.bin/node test/peers/install.ts consul)';

describe('local mesh across vm and consul (jibe up --platforms vm,consul)', { timeout: 240_000, skip }, () => {
  let up: ChildProcess;
  let upOutput = '';
  let dataDir: string;
  let gateway: string;
  let server: string;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-e2e-platforms-'));
    const [gw, disc, api] = [await freePort(), await freePort(), await freePort()];
    gateway = `http://127.0.0.1:${gw}`;
    server = `http://127.0.0.1:${api}`;
    up = spawn(process.execPath, [JIBE, 'up', '--platforms', 'vm,consul', '--data-dir', dataDir, '--gateway-port', String(gw), '--discovery-port', String(disc), '--api-port', String(api)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    up.stdout!.on('data', (d) => (upOutput += d));
    up.stderr!.on('data', (d) => (upOutput += d));
    await waitFor(() => upOutput.includes('Press Ctrl-C') || (up.exitCode !== null && Promise.reject(new Error(upOutput))), 'jibe up to be ready', 180_000);
  });

  after(async () => {
    if (up.exitCode === null) {
      up.kill('SIGKILL');
      await new Promise((r) => up.once('exit', r));
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the Consul agent and which platform each workload is on', () => {
    assert.match(upOutput, /✓ consul\s+http:\/\/127\.0\.0\.1:\d+ \(dev agent, datacenter dc1\)/);
    assert.match(upOutput, /^ratings-v1\s+consul\s+ratings:9080/m);
    assert.match(upOutput, /^reviews-v2\s+vm\s+reviews:9080/m);
  });

  it('one ratings service from Consul, reached from vm workloads: reviews v2/v3 show its stars', async () => {
    const services = (await (await fetch(`${server}/api/v1/services`)).json()) as { services: Array<{ hostname: string; platforms: string[] }> };
    assert.deepEqual(services.services.find((s) => s.hostname === 'ratings.default.svc.cluster.local')?.platforms, ['consul']);
    // A ratings reply renders stars (&#9733;); without ratings reviews v2/v3 say the service is unavailable.
    const html = await waitFor(async () => {
      const res = await fetch(`${gateway}/productpage`, { signal: AbortSignal.timeout(10_000) });
      const body = await res.text();
      return res.status === 200 && /Reviews served by: reviews-v[23]/.test(body) && body.includes('&#9733;') ? body : undefined;
    }, 'a page served by reviews v2 or v3 with ratings from Consul', 60_000);
    assert.doesNotMatch(html, /Ratings service is currently unavailable/);
  });

  it('jibe analyze finds nothing wrong (exit code 0)', async () => {
    const res = await runJibe(['analyze', '--server', server, '-o', 'json']);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.deepEqual((JSON.parse(res.stdout) as { summary: unknown }).summary, { errors: 0, warnings: 0 });
  });

  it('Ctrl-C stops every process, the Consul agent included', async () => {
    const pids = JSON.parse(fs.readFileSync(path.join(dataDir, 'processes.json'), 'utf8')) as Record<string, number>;
    assert.ok(pids.consul, 'consul runs under the supervisor');
    up.kill('SIGINT');
    await new Promise((r) => up.once('exit', r));
    const alive = Object.entries(pids).filter(([, pid]) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, []);
  });
});
