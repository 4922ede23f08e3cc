// Where the real peers used by integration tests and benchmarks live: a cache
// of our own (never system directories), shared by every checkout on the machine.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPeerBinary, PEERS_BIN_DIR, PEERS_CACHE_DIR } from '../../cli/up/local-peers.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export { PEERS_BIN_DIR };
/** The peer cache (`$JIBE_CACHE_DIR`, default `~/.cache/jibe`), shared with `jibe up`. */
export const CACHE_DIR = PEERS_CACHE_DIR;
/** GOMODCACHE and GOCACHE live here so Go builds are downloaded and compiled once. */
export const GO_CACHE_DIR = join(CACHE_DIR, 'go');

/** Absolute path of a peer binary: the cache first, then PATH and the system dirs; undefined if absent. */
export const peerBinary = findPeerBinary;

/** Like peerBinary, but says how to get the binary when it is missing. */
export function requirePeerBinary(name: string): string {
  const path = peerBinary(name);
  if (path === undefined) {
    throw new Error(`peer binary '${name}' not found; install the peers with: node_modules/.bin/node test/peers/install.ts ${name}`);
  }
  return path;
}
