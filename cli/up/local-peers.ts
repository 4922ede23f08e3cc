// The real peers `jibe up` runs besides Jibe (a Consul dev agent, etcd and
// kube-apiserver) come from the same place the tests take them: the repo's
// peer cache `.cache/peers/bin` (filled by test/peers/install.ts), then PATH.
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JibeError } from '../../core/errors/errors.ts';

/** The checkout this runs from: the sources (cli/up/) or the compiled dist/cli/up/ (whose package.json is the checkout's). */
function repoRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..', '..');
  }
}

const PEERS_BIN_DIR = path.join(repoRoot(), '.cache', 'peers', 'bin');
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** `node peer-launcher.<ext>`: runs a binary under the (Node-only) process supervisor. */
export const PEER_LAUNCHER = fileURLToPath(new URL(`./peer-launcher${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/** Absolute path of a peer binary, or JIBE_ERR_FILE_READ saying how to install it. */
export function peerBinary(name: string): string {
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
  throw new JibeError('JIBE_ERR_FILE_READ', `${name} is needed for this platform but was not found in ${PEERS_BIN_DIR} or on PATH`, {
    hint: `install it with: node_modules/.bin/node test/peers/install.ts ${name}`,
  });
}
