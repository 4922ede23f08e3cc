// The embedded file stores: both store contracts, plus what only a file store
// promises (permissions, crash leftovers, corruption, the data directory lock).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { ConfigEvent } from '../../core/config/config-store.ts';
import { FileConfigStore } from '../../core/config/config-store-file.ts';
import type { Resource } from '../../core/model/resource.ts';
import { acquireDataDirLock } from '../../core/state/data-dir-lock.ts';
import type { DataDirLock } from '../../core/state/data-dir-lock.ts';
import { fileNameForKey, FileStateStore } from '../../core/state/state-store-file.ts';
import { configStoreContract } from './config-store.contract.ts';
import { rejectsWithCode } from './contract-helpers.ts';
import { stateStoreContract } from './state-store.contract.ts';

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jibe-store-'));
  tempDirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

configStoreContract('file', async () => {
  const dir = await tempDir();
  return { store: await FileConfigStore.open(dir), reopen: () => FileConfigStore.open(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

stateStoreContract('file', async () => {
  const dir = await tempDir();
  return { store: await FileStateStore.open(dir), reopen: () => FileStateStore.open(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

function vs(name: string, weight = 100): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'default' },
    spec: { hosts: [name], http: [{ route: [{ destination: { host: name }, weight }] }] },
  };
}

async function mode(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o777).toString(8);
}

/** A pid that no process has: a child that already exited (reuse within the test is vanishingly unlikely). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.ok(child.pid);
  return child.pid;
}

function lockContent(pid: number, host = hostname()): string {
  return JSON.stringify({ pid, hostname: host, token: 'old', acquiredAt: '2020-01-01T00:00:00.000Z' }) + '\n';
}

describe('file stores on disk', () => {
  it('files are 0600 and the directories they create 0700', async () => {
    const root = await tempDir();
    const dataDir = join(root, 'nested', 'data');
    const config = await FileConfigStore.open(dataDir);
    const state = await FileStateStore.open(dataDir);
    try {
      await config.apply([vs('reviews')]);
      await state.put('ca/root-key', { pem: 'secret' }, { secret: true });
      await state.put('tokens/abc', { uses: 0 });
      await state.delete('tokens/abc'); // writes the revision floor file
      assert.equal(await mode(join(root, 'nested')), '700');
      assert.equal(await mode(dataDir), '700');
      assert.equal(await mode(join(dataDir, 'state')), '700');
      assert.equal(await mode(join(dataDir, 'config.json')), '600');
      assert.equal(await mode(join(dataDir, 'lock')), '600');
      const stateFiles = await readdir(join(dataDir, 'state'));
      assert.deepEqual(stateFiles.sort(), [fileNameForKey('ca/root-key'), 'lock', 'revision'].sort());
      for (const name of stateFiles) assert.equal(await mode(join(dataDir, 'state', name)), '600', name);
    } finally {
      await config.close();
      await state.close();
    }
    // Closing released both locks.
    assert.deepEqual((await readdir(dataDir)).sort(), ['config.json', 'state']);
    assert.deepEqual(await readdir(join(dataDir, 'state')), [fileNameForKey('ca/root-key'), 'revision'].sort());
  });

  it('state keys map to safe, distinct file names', () => {
    assert.equal(fileNameForKey('vm/registrations/default/reviews-v3'), 'vm%2Fregistrations%2Fdefault%2Freviews-v3.json');
    assert.notEqual(fileNameForKey('A'), fileNameForKey('a'));
    assert.equal(fileNameForKey('../x'), '..%2Fx.json');
    const long = fileNameForKey('k/'.repeat(200));
    assert.match(long, /^~[0-9a-f]{64}\.json$/);
    assert.notEqual(long, fileNameForKey('k/'.repeat(201)));
    assert.throws(() => fileNameForKey(''), /invalid state key/);
    assert.throws(() => fileNameForKey('\ud800'), /invalid state key/);
  });

  it('leaves no temp files behind, and removes those a crash left', async () => {
    const dir = await tempDir();
    let config = await FileConfigStore.open(dir);
    let state = await FileStateStore.open(dir);
    await config.apply([vs('reviews')]);
    await config.apply([vs('reviews', 50)]);
    await state.put('ca/root', { v: 1 });
    const listed = await config.list();
    assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'lock', 'state']);
    await config.close();
    await state.close();

    // What a write killed between open and rename leaves: a torn temp file next to the target.
    const configTemp = join(dir, 'config.json.4242-0123456789ab.tmp');
    const stateTemp = join(dir, 'state', `${fileNameForKey('ca/root')}.4242-0123456789ab.tmp`);
    await writeFile(configTemp, '{"formatVersion":1,"revis');
    await writeFile(stateTemp, '{"key":"ca/ro');
    config = await FileConfigStore.open(dir);
    state = await FileStateStore.open(dir);
    try {
      assert.deepEqual(await config.list(), listed);
      assert.deepEqual((await state.get('ca/root'))?.value, { v: 1 });
      assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'lock', 'state']);
      assert.ok(!(await readdir(join(dir, 'state'))).some((n) => n.endsWith('.tmp')));
    } finally {
      await config.close();
      await state.close();
    }
  });

  it('a corrupt config.json is reported, never reset', async () => {
    const dir = await tempDir();
    const file = join(dir, 'config.json');
    const store = await FileConfigStore.open(dir);
    await store.apply([vs('reviews')]);
    await store.close();
    const good = await readFile(file, 'utf8');

    const corruptions = [
      good.slice(0, good.length / 2), // torn write (what atomic rename prevents; a disk can still do it)
      '',
      '[]',
      JSON.stringify({ formatVersion: 99, revision: 1, resources: [] }),
      JSON.stringify({ formatVersion: 1, revision: -1, resources: [] }),
      JSON.stringify({ formatVersion: 1, revision: 2, resources: [{ kind: 'VirtualService', metadata: {} }] }),
      JSON.stringify({ formatVersion: 1, revision: 2, resources: [vs('a'), vs('a')] }),
    ];
    for (const text of corruptions) {
      await writeFile(file, text);
      const err = await rejectsWithCode(FileConfigStore.open(dir), 'JIBE_ERR_STORE_CORRUPT');
      assert.equal(err.details.file, file);
      assert.ok(err.message.includes(file), err.message);
      assert.equal(await readFile(file, 'utf8'), text, 'the file is left as it was');
    }
    // The failed opens released the lock: once the file is restored, the store opens.
    await writeFile(file, good);
    const again = await FileConfigStore.open(dir);
    try {
      assert.deepEqual((await again.list()).map((r) => r.metadata.name), ['reviews']);
    } finally {
      await again.close();
    }
  });

  it('a corrupt or misplaced state file is reported, never dropped', async () => {
    const dir = await tempDir();
    const store = await FileStateStore.open(dir);
    await store.put('ca/root', { v: 1 });
    await store.put('tokens/a', { v: 2 });
    await store.close();

    const rootFile = join(dir, 'state', fileNameForKey('ca/root'));
    const good = await readFile(rootFile, 'utf8');
    await writeFile(rootFile, good.slice(0, 10));
    let err = await rejectsWithCode(FileStateStore.open(dir), 'JIBE_ERR_STORE_CORRUPT');
    assert.equal(err.details.file, rootFile);

    // A file copied under another key's name must not answer for that key.
    await writeFile(rootFile, good);
    const tokenFile = join(dir, 'state', fileNameForKey('tokens/a'));
    await writeFile(tokenFile, good);
    err = await rejectsWithCode(FileStateStore.open(dir), 'JIBE_ERR_STORE_CORRUPT');
    assert.equal(err.details.file, tokenFile);
    assert.equal(await readFile(tokenFile, 'utf8'), good);
  });

  it('watch gets one array per apply/delete, only after the write is on disk', async () => {
    const dir = await tempDir();
    const store = await FileConfigStore.open(dir);
    const batches: ConfigEvent[][] = [];
    const onDisk: string[][] = [];
    store.watch((events) => {
      batches.push(events);
      const file = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { resources: Resource[] };
      onDisk.push(file.resources.map((r) => r.metadata.name));
    });
    try {
      await store.apply([vs('a'), vs('b')]);
      await store.apply([vs('a', 10)]);
      await store.delete([{ kind: 'VirtualService', namespace: 'default', name: 'a' }, { kind: 'VirtualService', namespace: 'default', name: 'b' }]);
      assert.deepEqual(batches.map((b) => b.map((e) => `${e.type} ${e.resource.metadata.name}`)), [['upsert a', 'upsert b'], ['upsert a'], ['delete a', 'delete b']]);
      assert.deepEqual(onDisk, [['a', 'b'], ['a', 'b'], []]);
    } finally {
      await store.close();
    }
  });

  it('resourceVersion keeps growing across restarts', async () => {
    const dir = await tempDir();
    let store = await FileConfigStore.open(dir);
    const [first] = await store.apply([vs('a')]);
    await store.apply([vs('b')]);
    await store.delete([{ kind: 'VirtualService', namespace: 'default', name: 'b' }]);
    await store.close();
    store = await FileConfigStore.open(dir);
    try {
      const [next] = await store.apply([vs('c')]);
      assert.ok(Number(next.metadata.resourceVersion) > Number(first.metadata.resourceVersion) + 2);
    } finally {
      await store.close();
    }
  });

  it('a listener that throws fails neither the write nor the listeners after it', async () => {
    const dir = await tempDir();
    const store = await FileConfigStore.open(dir);
    const seen: string[] = [];
    store.watch(() => {
      throw new Error('listener bug');
    });
    store.watch((events) => seen.push(...events.map((e) => e.resource.metadata.name)));
    const warned = once(process, 'warning');
    try {
      await store.apply([vs('a')]);
      assert.deepEqual(seen, ['a']);
      const [warning] = (await warned) as [Error];
      assert.match(warning.message, /listener bug/);
    } finally {
      await store.close();
    }
  });

  it('a closed store refuses calls', async () => {
    const dir = await tempDir();
    const config = await FileConfigStore.open(dir);
    const state = await FileStateStore.open(dir);
    await config.close();
    await state.close();
    await rejectsWithCode(config.apply([vs('a')]), 'JIBE_ERR_STORE_IO');
    await rejectsWithCode(config.list(), 'JIBE_ERR_STORE_IO');
    await rejectsWithCode(state.put('k', 1), 'JIBE_ERR_STORE_IO');
  });
});

describe('data directory lock', () => {
  it('refuses a second opener in the same process, then admits one after close', async () => {
    const dir = await tempDir();
    const first = await FileConfigStore.open(dir);
    const err = await rejectsWithCode(FileConfigStore.open(dir), 'JIBE_ERR_STORE_IO');
    assert.ok(err.message.includes(dir) && err.message.includes(String(process.pid)), err.message);
    assert.match(String(err.details.hint), /stop the other control plane.*--data-dir/);
    const state = await FileStateStore.open(dir);
    await rejectsWithCode(FileStateStore.open(dir), 'JIBE_ERR_STORE_IO');
    await first.close();
    await state.close();
    const second = await FileConfigStore.open(dir);
    await second.close();
  });

  it('refuses a lock held by another live process and leaves it alone', async () => {
    const dir = await tempDir();
    const content = lockContent(process.ppid);
    await writeFile(join(dir, 'lock'), content);
    const err = await rejectsWithCode(FileConfigStore.open(dir), 'JIBE_ERR_STORE_IO');
    assert.ok(err.message.includes(`pid ${process.ppid}`) && err.message.includes(dir), err.message);
    assert.equal(err.details.file, join(dir, 'lock'));
    assert.equal(await readFile(join(dir, 'lock'), 'utf8'), content);
  });

  it('takes over a stale lock whose process is dead', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), lockContent(deadPid()));
    const store = await FileConfigStore.open(dir);
    const held = JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid: number };
    assert.equal(held.pid, process.pid);
    await store.close();
    assert.deepEqual(await readdir(dir), [], 'close removed the lock and the takeover left nothing behind');
  });

  it('takes over a lock an earlier incarnation left under our own pid (containers run as pid 1)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), lockContent(process.pid));
    const lock = await acquireDataDirLock(dir);
    assert.notEqual(lock.owner.token, 'old');
    await lock.release();
  });

  it('refuses a lock from another host, whose process cannot be checked', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), lockContent(deadPid(), 'some-other-host'));
    const err = await rejectsWithCode(acquireDataDirLock(dir), 'JIBE_ERR_STORE_IO');
    assert.match(err.message, /some-other-host/);
  });

  it('refuses an unreadable lock file, with a hint', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), '');
    const err = await rejectsWithCode(acquireDataDirLock(dir), 'JIBE_ERR_STORE_IO');
    assert.match(String(err.details.hint), /delete the lock file/);
  });

  it('concurrent openers in one process: exactly one gets the lock', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), lockContent(deadPid()));
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => acquireDataDirLock(dir)));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    await (won[0] as PromiseFulfilledResult<DataDirLock>).value.release();
    assert.deepEqual(await readdir(dir), []);
  });

  it('processes racing for a stale lock: exactly one wins, the rest are refused', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lock'), lockContent(deadPid()));
    const moduleUrl = pathToFileURL(join(import.meta.dirname, '../../core/state/data-dir-lock.ts')).href;
    // Each child loads, says ready, waits for "go" (so the attempts overlap), tries
    // once, reports, and holds what it got until its stdin closes.
    const script = `
      const { acquireDataDirLock } = await import(${JSON.stringify(moduleUrl)});
      const { createInterface } = await import('node:readline');
      const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
      process.stdout.write('ready\\n');
      await lines.next();
      let lock;
      try { lock = await acquireDataDirLock(${JSON.stringify(dir)}); process.stdout.write('acquired\\n'); }
      catch (err) { process.stdout.write('refused ' + err.code + '\\n'); }
      await lines.next();
      await lock?.release();
    `;
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const exits = children.map((c) => once(c, 'exit'));
    const outputs = children.map((c) => {
      const lines = createInterface({ input: c.stdout })[Symbol.asyncIterator]();
      return async () => String((await lines.next()).value);
    });
    try {
      for (const next of outputs) assert.equal(await next(), 'ready');
      for (const c of children) c.stdin.write('go\n');
      const results = await Promise.all(outputs.map((next) => next()));
      assert.deepEqual(results.filter((r) => r === 'acquired'), ['acquired'], results.join(', '));
      assert.deepEqual(new Set(results.filter((r) => r !== 'acquired')), new Set(['refused JIBE_ERR_STORE_IO']), results.join(', '));
    } finally {
      for (const c of children) c.stdin.end();
      await Promise.race([Promise.all(exits), delay(10_000, undefined, { ref: false })]);
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all(exits);
    }
    assert.deepEqual(await readdir(dir), [], 'the winner released its lock; no takeover file is left');
  });

  it('a control plane killed with SIGKILL blocks others while alive; its lock is taken over after', async () => {
    const dir = await tempDir();
    const moduleUrl = pathToFileURL(join(import.meta.dirname, '../../core/config/config-store-file.ts')).href;
    const script = `
      const { FileConfigStore } = await import(${JSON.stringify(moduleUrl)});
      await FileConfigStore.open(${JSON.stringify(dir)});
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1 << 30);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    try {
      let out = '';
      for await (const chunk of child.stdout) {
        out += String(chunk);
        if (out.includes('ready')) break;
      }
      assert.equal(out, 'ready\n');
      const err = await rejectsWithCode(FileConfigStore.open(dir), 'JIBE_ERR_STORE_IO');
      assert.ok(err.message.includes(`pid ${child.pid}`), err.message);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const store = await FileConfigStore.open(dir);
    await store.close();
  });
});
