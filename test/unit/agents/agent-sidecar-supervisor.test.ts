// The sidecar's process lifecycle without a real proxy: a stand-in `jibe`
// entry prints the arguments it was started with and waits for SIGTERM.
// Warm start (the launcher gets its argv over IPC, output reaches the log),
// restart after a crash (a fresh process, straight to the log), stop, and a
// warm process that is discarded exits.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { SidecarSupervisor, WarmSidecar } from '../../../agents/node/agent-sidecar.ts';
import type { SidecarStatus } from '../../../agents/node/agent-sidecar.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const FAKE_JIBE = `
process.stdout.write('started ' + JSON.stringify(process.argv.slice(2)) + ' pid ' + process.pid + '\\n');
process.on('SIGTERM', () => { process.stdout.write('stopping\\n'); process.exit(0); });
setInterval(() => {}, 1000);
`;

function fixture(t: { after: (fn: () => void) => void }): { entry: string; log: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-sidecar-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const entry = path.join(dir, 'cli', 'jibe.mjs');
  fs.mkdirSync(path.dirname(entry));
  fs.writeFileSync(entry, FAKE_JIBE);
  return { entry, log: path.join(dir, 'proxy.log') };
}

it('a warm sidecar gets its arguments over IPC, logs to the log file, is restarted after a crash and stopped', async (t) => {
  const { entry, log } = fixture(t);
  const warm = new WarmSidecar({ entry, nodeArgs: [] });
  const statuses: SidecarStatus[] = [];
  const supervisor = new SidecarSupervisor({ nodeArgs: [], entry, args: ['proxy', '--workload', 'w'] }, {}, log, (s) => statuses.push(s));
  t.after(() => supervisor.stop());
  supervisor.start(warm);
  const first = supervisor.status.pid!;
  assert.equal(first, warm.child.pid, 'the warm process is the sidecar');
  await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(`started ["proxy","--workload","w"] pid ${first}`), 'the warm sidecar to run with its arguments');

  process.kill(first, 'SIGKILL');
  await waitFor(() => supervisor.status.state === 'running' && supervisor.status.pid !== first && supervisor.status.pid, 'a restart');
  const second = supervisor.status.pid!;
  await waitFor(() => fs.readFileSync(log, 'utf8').includes(`started ["proxy","--workload","w"] pid ${second}`), 'the restarted sidecar to log');
  assert.equal(supervisor.status.restarts, 1);
  assert.ok(statuses.some((s) => s.state === 'restarting'));

  await supervisor.stop();
  assert.equal(supervisor.status.state, 'stopped');
  await waitFor(() => fs.readFileSync(log, 'utf8').includes('stopping'), 'SIGTERM to reach the sidecar');
});

it('a discarded warm sidecar exits (a refused join leaves no process behind)', async (t) => {
  const { entry } = fixture(t);
  const warm = new WarmSidecar({ entry, nodeArgs: [] });
  const exited = new Promise((resolve) => warm.child.once('exit', resolve));
  warm.discard();
  await exited;
  assert.equal(warm.alive, false);
});
