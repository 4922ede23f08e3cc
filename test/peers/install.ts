// Installs the real peers that integration tests and benchmarks run against,
// from package registries only (Go module proxy, apt). Idempotent: an installed
// peer is detected in milliseconds, so a second run costs seconds.
//
//   node test/peers/install.ts            install every peer
//   node test/peers/install.ts fortio     install the named peers only
//
// A peer is one entry in PEERS; later peers (consul, kube-apiserver, …) are added there.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GO_CACHE_DIR, PEERS_BIN_DIR, peerBinary } from './paths.ts';

export interface Peer {
  name: string;
  /** Fast check; must not touch the network. */
  isInstalled(): boolean;
  install(): Promise<void>;
}

/**
 * Pinned so benchmark figures stay comparable across runs; bump deliberately.
 * v1.69.0 and later depend on grol.io/grol (its scripting mode), whose host the
 * module proxy here does not serve, so v1.68.2 is the newest that builds.
 */
export const FORTIO_VERSION = 'v1.68.2';

function log(message: string): void {
  process.stdout.write(`[peers] ${message}\n`);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, output }));
  });
}

function goEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOBIN: PEERS_BIN_DIR,
    GOMODCACHE: join(GO_CACHE_DIR, 'mod'),
    GOCACHE: join(GO_CACHE_DIR, 'build'),
    CGO_ENABLED: '0',
    ...extra,
  };
}

/** `go install module@version`, retrying without the checksum database if it cannot be reached. */
async function goInstall(moduleAtVersion: string): Promise<void> {
  mkdirSync(PEERS_BIN_DIR, { recursive: true });
  const args = ['install', '-trimpath', moduleAtVersion];
  const first = await run('go', args, goEnv());
  if (first.code === 0) return;
  if (/sum\.golang\.org|checksum database|verifying .*: /i.test(first.output)) {
    log(`checksum database unreachable; retrying ${moduleAtVersion} with GOSUMDB=off`);
    const second = await run('go', args, goEnv({ GOSUMDB: 'off', GONOSUMDB: '*', GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod`.trim() }));
    if (second.code === 0) return;
  }
  throw new Error(`go install ${moduleAtVersion} failed (exit ${first.code})`);
}

function versionOutput(binary: string, args: string[]): string {
  const result = spawnSync(binary, args, { encoding: 'utf8', timeout: 10_000 });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`;
}

const fortio: Peer = {
  name: 'fortio',
  isInstalled() {
    const binary = join(PEERS_BIN_DIR, 'fortio');
    // `fortio version` prints e.g. "1.75.3 h1:… go1.26 amd64 linux"; a rebuilt pin must replace an old binary.
    return versionOutput(binary, ['version']).trim().startsWith(FORTIO_VERSION.slice(1));
  },
  install: () => goInstall(`fortio.org/fortio@${FORTIO_VERSION}`),
};

/** A peer that Debian packages: installed with apt-get when its binary is missing. */
function aptPeer(name: string, binary: string, pkg: string, after?: () => void): Peer {
  return {
    name,
    isInstalled: () => peerBinary(binary) !== undefined,
    async install() {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      let result = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], env);
      if (result.code !== 0) {
        log('apt-get install failed; refreshing the package index and retrying');
        await run('apt-get', ['update'], env);
        result = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], env);
      }
      if (result.code !== 0) throw new Error(`apt-get install ${pkg} failed (exit ${result.code})`);
      after?.();
    },
  };
}

// The Debian package starts a system nginx on port 80; benchmarks run their own.
const nginx = aptPeer('nginx', 'nginx', 'nginx-light', () => spawnSync('systemctl', ['disable', '--now', 'nginx'], { stdio: 'ignore' }));
/** Traffic capture tests (agents/capture) run real iptables in network namespaces. */
const iptables = aptPeer('iptables', 'iptables-save', 'iptables');
const iproute2 = aptPeer('iproute2', 'ip', 'iproute2');

export const PEERS: readonly Peer[] = [fortio, nginx, iptables, iproute2];

/** Installs the named peers (all when `names` is empty); returns the names that failed. */
export async function installPeers(names: readonly string[] = []): Promise<string[]> {
  const unknown = names.filter((name) => !PEERS.some((peer) => peer.name === name));
  if (unknown.length > 0) {
    throw new Error(`unknown peer(s): ${unknown.join(', ')}; known: ${PEERS.map((peer) => peer.name).join(', ')}`);
  }
  const selected = names.length === 0 ? PEERS : PEERS.filter((peer) => names.includes(peer.name));
  const failed: string[] = [];
  for (const peer of selected) {
    if (peer.isInstalled()) {
      log(`${peer.name}: installed`);
      continue;
    }
    const started = Date.now();
    log(`${peer.name}: installing…`);
    try {
      await peer.install();
      if (!peer.isInstalled()) throw new Error('install finished but the peer is still not found');
      log(`${peer.name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      log(`${peer.name}: FAILED: ${(error as Error).message}`);
      failed.push(peer.name);
    }
  }
  return failed;
}

if (import.meta.main) {
  const failed = await installPeers(process.argv.slice(2));
  if (failed.length > 0) {
    log(`failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}
