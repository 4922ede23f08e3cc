// Installs the real peers that integration tests and benchmarks run against,
// from package registries only (Go module proxy, apt). Idempotent: an installed
// peer is detected in milliseconds, so a second run costs seconds.
//
//   node test/peers/install.ts            install every peer
//   node test/peers/install.ts fortio     install the named peers only
//
// A peer is one entry in PEERS; later peers (consul, kube-apiserver, …) are added there.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, GO_CACHE_DIR, PEERS_BIN_DIR, peerBinary } from './paths.ts';

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

/** HTTP/2 conformance (h2spec); v2.2.1 is the last release, published without a go.mod. */
export const H2SPEC_VERSION = 'v2.2.1+incompatible';
/** grpc-go's interop client and server; pinned so the interop cases stay the same. */
export const GRPC_INTEROP_VERSION = 'v1.85.0';
/** Consul agent for platforms/consul; the newest v1.x the module proxy serves when pinned. */
export const CONSUL_VERSION = 'v1.22.7';
/**
 * Consul builds its nested api module from its own tree; the published
 * api v1.33.x lags behind it (no ACLToken.Name), v1.34.5 matches what
 * v1.22.7's commands use.
 */
export const CONSUL_API_VERSION = 'v1.34.5';
/** Wrapper module Consul is built from (its own go.mod replaces nested modules with local paths). */
export const CONSUL_BUILD_DIR = join(CACHE_DIR, 'consul-build');

/** The interop binaries are both named after their package (client, server): they get a directory of their own. */
export const GRPC_INTEROP_BIN_DIR = join(PEERS_BIN_DIR, 'grpc');

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

/** `go <args>`, retrying without the checksum database if it cannot be reached. */
async function go(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<void> {
  const first = await run('go', args, goEnv(extra));
  if (first.code === 0) return;
  if (/sum\.golang\.org|checksum database|verifying .*: /i.test(first.output)) {
    log(`checksum database unreachable; retrying go ${args.join(' ')} with GOSUMDB=off`);
    const second = await run('go', args, goEnv({ ...extra, GOSUMDB: 'off', GONOSUMDB: '*', GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod`.trim() }));
    if (second.code === 0) return;
  }
  throw new Error(`go ${args.join(' ')} failed (exit ${first.code})`);
}

/** `go install module@version` into `binDir`. */
async function goInstall(moduleAtVersion: string, binDir = PEERS_BIN_DIR): Promise<void> {
  mkdirSync(binDir, { recursive: true });
  await go(['install', '-trimpath', moduleAtVersion], { GOBIN: binDir });
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

/**
 * Whether `binary` was built from `module` at `version`: `go version -m` reads
 * the build info Go embeds, so a binary from another pin is rebuilt.
 */
function goBinaryIs(binary: string, module: string, version: string): boolean {
  if (!existsSync(binary)) return false;
  const info = versionOutput('go', ['version', '-m', binary]);
  return info.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[0] === 'mod' && fields[1] === module && fields[2] === version;
  });
}

const h2spec: Peer = {
  name: 'h2spec',
  isInstalled: () => goBinaryIs(join(PEERS_BIN_DIR, 'h2spec'), 'github.com/summerwind/h2spec', H2SPEC_VERSION),
  install: () => goInstall(`github.com/summerwind/h2spec/cmd/h2spec@${H2SPEC_VERSION}`),
};

const grpcInterop: Peer = {
  name: 'grpc-interop',
  isInstalled: () =>
    ['client', 'server'].every((name) => goBinaryIs(join(GRPC_INTEROP_BIN_DIR, name), 'google.golang.org/grpc', GRPC_INTEROP_VERSION)),
  async install() {
    await goInstall(`google.golang.org/grpc/interop/client@${GRPC_INTEROP_VERSION}`, GRPC_INTEROP_BIN_DIR);
    await goInstall(`google.golang.org/grpc/interop/server@${GRPC_INTEROP_VERSION}`, GRPC_INTEROP_BIN_DIR);
  },
};

/** `go <args>` in the module at `dir`. */
function goIn(dir: string, args: string[]): Promise<void> {
  return go(['-C', dir, ...args]);
}

/**
 * Consul's root go.mod replaces its nested modules (api, sdk, …) with local
 * paths, so `go install` refuses it; a wrapper module depending on it builds,
 * because a dependency's replace directives are ignored. go-msgpack 1.1.5/1.1.6
 * were retracted-in-spirit releases that break raft's codec, hence the excludes.
 */
const consul: Peer = {
  name: 'consul',
  isInstalled: () => goBinaryIs(join(PEERS_BIN_DIR, 'consul'), 'github.com/hashicorp/consul', CONSUL_VERSION),
  async install() {
    mkdirSync(CONSUL_BUILD_DIR, { recursive: true });
    if (!existsSync(join(CONSUL_BUILD_DIR, 'go.mod'))) {
      await goIn(CONSUL_BUILD_DIR, ['mod', 'init', 'local/consulbuild']);
    }
    await goIn(CONSUL_BUILD_DIR, ['mod', 'edit', '-exclude=github.com/hashicorp/go-msgpack@v1.1.5', '-exclude=github.com/hashicorp/go-msgpack@v1.1.6']);
    await goIn(CONSUL_BUILD_DIR, ['get', `github.com/hashicorp/consul@${CONSUL_VERSION}`]);
    await goIn(CONSUL_BUILD_DIR, ['get', `github.com/hashicorp/consul/api@${CONSUL_API_VERSION}`]);
    mkdirSync(PEERS_BIN_DIR, { recursive: true });
    // -mod=mod: the api upgrade adds go.sum lines for packages only the build reaches.
    await goIn(CONSUL_BUILD_DIR, ['build', '-mod=mod', '-trimpath', '-ldflags', '-s -w', '-o', join(PEERS_BIN_DIR, 'consul'), 'github.com/hashicorp/consul']);
  },
};

/** Kubernetes API server for platforms/kubernetes; its staging modules are pinned to the matching v0 release. */
export const KUBE_APISERVER_VERSION = 'v1.34.2';
/** etcd for the API server; 3.5 is what Kubernetes 1.34 documents as its minimum line. */
export const ETCD_VERSION = 'v3.5.21';
export const KUBE_APISERVER_BUILD_DIR = join(CACHE_DIR, 'peers', 'src', 'kas');
export const ETCD_BUILD_DIR = join(CACHE_DIR, 'peers', 'src', 'etcd');

/**
 * k8s.io/kubernetes replaces its staging modules (k8s.io/api, apiserver, …)
 * with local paths, so it builds only from a wrapper module that replaces
 * each with its published v0 twin. The version ldflags make `--version` and
 * the /version endpoint say what a real release says (clients check it).
 */
const kubeApiserver: Peer = {
  name: 'kube-apiserver',
  isInstalled: () => goBinaryIs(join(PEERS_BIN_DIR, 'kube-apiserver'), 'k8s.io/kubernetes', KUBE_APISERVER_VERSION),
  async install() {
    const dir = KUBE_APISERVER_BUILD_DIR;
    const minor = KUBE_APISERVER_VERSION.split('.')[1];
    const staging = `v0.${minor}.${KUBE_APISERVER_VERSION.split('.')[2]}`;
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, 'go.mod'))) await goIn(dir, ['mod', 'init', 'local/kasbuild']);
    const download = spawnSync('go', ['mod', 'download', '-json', `k8s.io/kubernetes@${KUBE_APISERVER_VERSION}`], { cwd: dir, env: goEnv(), encoding: 'utf8' });
    const goModPath = /"GoMod": "([^"]+)"/.exec(download.stdout ?? '')?.[1];
    if (!goModPath) throw new Error(`cannot download k8s.io/kubernetes@${KUBE_APISERVER_VERSION}: ${download.stderr}`);
    const stagingModules = [...readFileSync(goModPath, 'utf8').matchAll(/^\s*(k8s\.io\/\S+) => \.\/staging\//gm)].map((m) => m[1]);
    for (const m of stagingModules) await goIn(dir, ['mod', 'edit', `-replace=${m}=${m}@${staging}`]);
    await goIn(dir, ['get', `k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_APISERVER_VERSION}`]);
    mkdirSync(PEERS_BIN_DIR, { recursive: true });
    const ldflags = `-X k8s.io/component-base/version.gitVersion=${KUBE_APISERVER_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}`;
    await goIn(dir, ['build', '-trimpath', '-ldflags', ldflags, '-o', join(PEERS_BIN_DIR, 'kube-apiserver'), 'k8s.io/kubernetes/cmd/kube-apiserver']);
  },
};

/** Debian's etcd-server is 3.4, below what the API server supports; 3.5 is built from the module proxy. */
const etcd: Peer = {
  name: 'etcd',
  isInstalled: () => goBinaryIs(join(PEERS_BIN_DIR, 'etcd'), 'go.etcd.io/etcd/server/v3', ETCD_VERSION),
  async install() {
    mkdirSync(ETCD_BUILD_DIR, { recursive: true });
    if (!existsSync(join(ETCD_BUILD_DIR, 'go.mod'))) await goIn(ETCD_BUILD_DIR, ['mod', 'init', 'local/etcdbuild']);
    await goIn(ETCD_BUILD_DIR, ['get', `go.etcd.io/etcd/server/v3@${ETCD_VERSION}`]);
    mkdirSync(PEERS_BIN_DIR, { recursive: true });
    await goIn(ETCD_BUILD_DIR, ['build', '-trimpath', '-o', join(PEERS_BIN_DIR, 'etcd'), 'go.etcd.io/etcd/server/v3']);
  },
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
/** The two-VM test (test/integration/vm) reads the wire between the VMs to show no plaintext crosses it. */
const tcpdump = aptPeer('tcpdump', 'tcpdump', 'tcpdump');

// Observability tests scrape the mesh with a real Prometheus; the package starts a system one on 9090: benchmarks and tests run their own.
const prometheus = aptPeer('prometheus', 'prometheus', 'prometheus', () => spawnSync('systemctl', ['disable', '--now', 'prometheus'], { stdio: 'ignore' }));

/** Zipkin server (Maven Central's executable jar, run with the system Java 17); pinned so span handling stays comparable. */
export const ZIPKIN_VERSION = '3.6.1';
/** Where `mvn dependency:get` leaves the executable jar. */
export function zipkinJar(): string {
  return join(process.env.HOME ?? '/root', '.m2', 'repository', 'io', 'zipkin', 'zipkin-server', ZIPKIN_VERSION, `zipkin-server-${ZIPKIN_VERSION}-exec.jar`);
}
const zipkin: Peer = {
  name: 'zipkin',
  isInstalled: () => existsSync(zipkinJar()),
  async install() {
    const result = await run('mvn', ['-q', '-B', 'dependency:get', `-Dartifact=io.zipkin:zipkin-server:${ZIPKIN_VERSION}:jar:exec`, '-Dtransitive=false']);
    if (result.code !== 0 || !existsSync(zipkinJar())) throw new Error(`mvn dependency:get zipkin-server ${ZIPKIN_VERSION} failed (exit ${result.code})`);
  },
};

export const PEERS: readonly Peer[] = [fortio, nginx, iptables, iproute2, h2spec, grpcInterop, consul, prometheus, zipkin, kubeApiserver, etcd, tcpdump];

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
