// Where the real peers used by integration tests and benchmarks live: a cache
// of our own (never system directories), shared by every checkout on the machine.
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * Outside the checkout (`$JIBE_CACHE_DIR`, default `~/.cache/jibe`), so a fresh
 * clone — CI's, or a second worktree — reuses peers built once on the machine
 * instead of rebuilding Consul and kube-apiserver for minutes.
 */
export const CACHE_DIR = process.env.JIBE_CACHE_DIR ?? join(homedir(), '.cache', 'jibe');
export const PEERS_BIN_DIR = join(CACHE_DIR, 'peers', 'bin');
/** GOMODCACHE and GOCACHE live here so Go builds are downloaded and compiled once. */
export const GO_CACHE_DIR = join(CACHE_DIR, 'go');

// apt puts daemons in sbin, which a non-login root shell may not have on PATH.
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a peer binary: the cache first, then PATH and the system dirs; undefined if absent. */
export function peerBinary(name: string): string | undefined {
  const dirs = [PEERS_BIN_DIR, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Like peerBinary, but says how to get the binary when it is missing. */
export function requirePeerBinary(name: string): string {
  const path = peerBinary(name);
  if (path === undefined) {
    throw new Error(`peer binary '${name}' not found; install the peers with: node_modules/.bin/node test/peers/install.ts ${name}`);
  }
  return path;
}
