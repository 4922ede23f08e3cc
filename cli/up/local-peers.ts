// The real peers `jibe up` runs besides Jibe (a Consul dev agent, etcd and
// kube-apiserver) come from the same place the tests take them: the peer
// cache `$JIBE_CACHE_DIR/peers/bin` (default ~/.cache/jibe, filled by
// test/peers/install.ts), then PATH.
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JibeError } from '../../core/errors/errors.ts';

/**
 * The peer cache, outside any checkout (`$JIBE_CACHE_DIR`, default
 * `~/.cache/jibe`), so a fresh clone — CI's, or a second worktree — reuses
 * peers built once on the machine instead of rebuilding them for minutes.
 */
export const PEERS_CACHE_DIR = process.env.JIBE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'jibe');
export const PEERS_BIN_DIR = path.join(PEERS_CACHE_DIR, 'peers', 'bin');
// apt puts daemons in sbin, which a non-login root shell may not have on PATH.
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** `node peer-launcher.<ext>`: runs a binary under the (Node-only) process supervisor. */
export const PEER_LAUNCHER = fileURLToPath(new URL(`./peer-launcher${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/** Absolute path of a peer binary: the cache first, then PATH and the system dirs; undefined if absent. */
export function findPeerBinary(name: string): string | undefined {
  const dirs = [PEERS_BIN_DIR, ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Absolute path of a peer binary, or JIBE_ERR_FILE_READ saying how to install it. */
export function peerBinary(name: string): string {
  const found = findPeerBinary(name);
  if (found !== undefined) return found;
  throw new JibeError('JIBE_ERR_FILE_READ', `${name} is needed for this platform but was not found in ${PEERS_BIN_DIR} or on PATH`, {
    hint: `install it with: node_modules/.bin/node test/peers/install.ts ${name}`,
  });
}
