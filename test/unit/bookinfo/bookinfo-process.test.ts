// Each service as a process: its flags, its one start-up line, and a clean exit on SIGTERM.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { parseServiceFlags, UsageError } from '../../../deploy/samples/bookinfo/bookinfo-common.ts';
import { REVIEWS_VERSIONS } from '../../../deploy/samples/bookinfo/reviews.ts';

const SAMPLE_DIR = join(import.meta.dirname, '../../../deploy/samples/bookinfo');

describe('service flags', () => {
  it('defaults to 127.0.0.1:9080, version v1, name <service>-<version>', () => {
    assert.deepEqual(parseServiceFlags('details', [], {}), { port: 9080, host: '127.0.0.1', version: 'v1', name: 'details-v1' });
  });

  it('takes flags in both forms, and version and name from the environment', () => {
    assert.deepEqual(parseServiceFlags('reviews', ['--port', '0', '--host=::1', '--version', 'v3'], {}, REVIEWS_VERSIONS), {
      port: 0,
      host: '::1',
      version: 'v3',
      name: 'reviews-v3',
    });
    assert.deepEqual(parseServiceFlags('reviews', [], { SERVICE_VERSION: 'v2', WORKLOAD_NAME: 'reviews-v2-7f9c' }), {
      port: 9080,
      host: '127.0.0.1',
      version: 'v2',
      name: 'reviews-v2-7f9c',
    });
    assert.equal(parseServiceFlags('reviews', ['--version', 'v3'], { SERVICE_VERSION: 'v2' }).version, 'v3', 'flag beats env');
  });

  it('refuses bad values with a usage error', () => {
    assert.throws(() => parseServiceFlags('ratings', ['--port', 'http'], {}), UsageError);
    assert.throws(() => parseServiceFlags('ratings', ['--port', '70000'], {}), /0 to 65535/);
    assert.throws(() => parseServiceFlags('ratings', ['--port', '-1'], {}), UsageError);
    assert.throws(() => parseServiceFlags('ratings', ['--colour', 'red'], {}), UsageError);
    assert.throws(() => parseServiceFlags('reviews', ['--version', 'v9'], {}, REVIEWS_VERSIONS), /v1, v2, v3/);
  });
});

describe('service process', () => {
  for (const [script, args] of [
    ['ratings.ts', []],
    ['reviews.ts', ['--version', 'v1']],
  ] as const) {
    it(`${script} logs where it listens, serves, and exits 0 on SIGTERM`, async () => {
      const child = spawn(process.execPath, [join(SAMPLE_DIR, script), '--port', '0', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        const lines = createInterface({ input: child.stdout });
        const [line] = (await once(lines, 'line')) as [string];
        const service = script.replace('.ts', '');
        const match = new RegExp(`^${service} listening on 127\\.0\\.0\\.1:(\\d+)$`).exec(line);
        assert.ok(match, `start-up line: ${line}`);

        const res = await fetch(`http://127.0.0.1:${match[1]}/health`);
        assert.equal(res.status, 200);
        await res.text();

        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const [code, signal] = (await exited) as [number | null, string | null];
        assert.equal(signal, null, stderr);
        assert.equal(code, 0, stderr);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }

  it('exits 2 with a usage line on a bad flag', async () => {
    const child = spawn(process.execPath, [join(SAMPLE_DIR, 'reviews.ts'), '--version', 'v7'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2);
    assert.match(stderr, /--version must be one of v1, v2, v3/);
    assert.match(stderr, /usage: node reviews\.ts/);
  });
});
