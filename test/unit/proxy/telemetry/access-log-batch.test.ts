// The access log's way to stdout: whole lines in batches, never blocking the
// proxy and never holding more than its bound for a reader that stopped
// reading (lines past it are dropped, counted, and reported in the log).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { ACCESS_LOG_BATCH_BYTES, AccessLogBatch } from '../../../../proxy/telemetry/access-log-batch.ts';
import { droppedJsonLine } from '../../../../proxy/telemetry/access-log.ts';

const LINE = '{"level":30,"path":"/' + 'x'.repeat(500) + '","msg":"access"}\n';

/** A stream whose reader holds every write until `release()`. */
function heldOutput(): { output: Writable; chunks: Buffer[]; release(): void } {
  const chunks: Buffer[] = [];
  const held: Array<() => void> = [];
  let holding = true;
  const output = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      if (holding) held.push(done);
      else done();
    },
  });
  return {
    output,
    chunks,
    release() {
      holding = false;
      for (const done of held.splice(0)) done();
    },
  };
}

test('lines wait in the batch until it fills or is flushed, and leave as whole lines', () => {
  const chunks: Buffer[] = [];
  const output = new Writable({ write: (chunk: Buffer, _enc, done) => void (chunks.push(chunk), done()) });
  const batch = new AccessLogBatch({ output, droppedLine: droppedJsonLine });
  let added = 0;
  while (chunks.length === 0) {
    batch.add(LINE);
    added++;
  }
  // Sent when the next line might not fit (UTF-8 may take 3 bytes per UTF-16 unit): the batch was nearly full.
  assert.ok(chunks[0].length > ACCESS_LOG_BATCH_BYTES - 3 * LINE.length, `${chunks[0].length} bytes in the first batch`);
  assert.equal(chunks[0].toString(), LINE.repeat(added - 1), 'the line that does not fit waits for the next batch');
  batch.close();
  assert.equal(chunks.length, 2);
  assert.equal(chunks[1].toString(), LINE);
  assert.equal(batch.droppedLines, 0);
});

test('a reader that stops reading costs lines past the bound, not memory; one line then says how many', async () => {
  const held = heldOutput();
  const maxPendingBytes = 4 * ACCESS_LOG_BATCH_BYTES;
  const batch = new AccessLogBatch({ output: held.output, maxPendingBytes, droppedLine: droppedJsonLine });
  const lines = 2000;
  for (let i = 0; i < lines; i++) batch.add(LINE);
  batch.flush();
  assert.ok(held.output.writableLength <= maxPendingBytes, `${held.output.writableLength} bytes pending, bound ${maxPendingBytes}`);
  assert.ok(batch.droppedLines > 0);
  const drained = once(held.output, 'drain');
  held.release();
  await drained;
  await new Promise((resolve) => setImmediate(resolve));
  const text = Buffer.concat(held.chunks).toString();
  const written = text.split('\n').filter((l) => l !== '');
  const report = JSON.parse(written.at(-1)!) as { level: number; dropped_lines: number; msg: string };
  assert.equal(report.level, 40);
  assert.equal(report.dropped_lines, batch.droppedLines);
  assert.equal(written.length - 1 + report.dropped_lines, lines, 'every line is either written or counted');
  for (const line of written.slice(0, -1)) assert.equal(line + '\n', LINE, 'only whole lines are written');
  batch.close();
});

test('an output that failed (EPIPE) is not written to and does not end the process', async () => {
  const output = new Writable({ write: (_chunk, _enc, done) => done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) });
  const batch = new AccessLogBatch({ output, droppedLine: droppedJsonLine });
  batch.add(LINE);
  batch.flush();
  // The stream reports the error (and is destroyed) on a later tick; unheard, it would be an uncaught exception.
  await new Promise((resolve) => setImmediate(resolve));
  batch.add(LINE);
  batch.close();
  assert.equal(output.destroyed, true);
  assert.equal(batch.droppedLines, 1);
});

test('on a real pipe nobody reads, the writer never blocks and holds at most the bound', async () => {
  // A child writes 20 MB of lines to its stdout, a pipe this test reads only after the child has reported: a writer
  // that blocked on the full pipe would never report. Then this side reads everything the child wrote.
  const script = `
    import { AccessLogBatch } from ${JSON.stringify(new URL('../../../../proxy/telemetry/access-log-batch.ts', import.meta.url).pathname)};
    import { droppedJsonLine } from ${JSON.stringify(new URL('../../../../proxy/telemetry/access-log.ts', import.meta.url).pathname)};
    const batch = new AccessLogBatch({ droppedLine: droppedJsonLine });
    const line = ${JSON.stringify(LINE)};
    let written = 0;
    while (written < 40000) { for (let i = 0; i < 1000; i++) batch.add(line); written += 1000; await new Promise((r) => setImmediate(r)); }
    const pending = process.stdout.writableLength;
    batch.close();
    process.stderr.write(JSON.stringify({ written, dropped: batch.droppedLines, pending }) + '\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Wait for the child's report with its stdout unread, then drain it.
  while (!stderr.includes('\n')) {
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stdout.resume();
  await once(child, 'close');
  assert.equal(child.exitCode, 0, stderr);
  const report = JSON.parse(stderr.trim().split('\n')[0]) as { written: number; dropped: number; pending: number };
  assert.ok(report.dropped > 0, `the unread pipe filled, so lines were dropped: ${stderr}`);
  assert.ok(report.pending <= 4 * 1024 * 1024, `at most the bound waits in memory: ${stderr}`);
  const out = Buffer.concat(chunks).toString().split('\n').filter((l) => l !== '');
  const drops = out.filter((l) => l.includes('"dropped_lines"')).map((l) => (JSON.parse(l) as { dropped_lines: number }).dropped_lines);
  const lines = out.filter((l) => !l.includes('"dropped_lines"'));
  for (const line of lines) assert.equal(line + '\n', LINE);
  assert.equal(lines.length + drops.reduce((a, b) => a + b, 0), report.written, 'every line is written or reported dropped');
});
