// MultiConfigStore passes the same ConfigStore contract as each store it merges:
// here two file stores, the second holding rules of its own in a namespace the
// contract never touches would change its listings, so it starts empty — the
// merging itself is tested in test/unit/config/config-store-multi.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileConfigStore } from '../../core/config/config-store-file.ts';
import { MultiConfigStore } from '../../core/config/config-store-multi.ts';
import { configStoreContract } from './config-store.contract.ts';

configStoreContract('multi (file, file)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'jibe-multi-'));
  const open = async () => MultiConfigStore.open([
    { name: 'file', store: await FileConfigStore.open(join(root, 'a')) },
    { name: 'second', store: await FileConfigStore.open(join(root, 'b')) },
  ]);
  return { store: await open(), reopen: open, cleanup: () => rm(root, { recursive: true, force: true }) };
});
