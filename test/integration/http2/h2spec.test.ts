// HTTP/2 conformance of the proxy's listeners with h2spec (every case of
// RFC 7540/7541 it has), against an inbound and a gateway listener of a proxy
// started in-process, routed to an HTTP/1.1 app. Every case must pass except
// those in ACCEPTED, each with the reason it is accepted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningProxy } from '../../../proxy/proxy.ts';
import { PEERS_BIN_DIR } from '../../peers/paths.ts';
import type { Upstream } from '../../unit/proxy/proxy-test-helpers.ts';
import { cluster, endpoints, freePort, fullUpdate, listener, route, routeConfig, startSidecar, startUpstream, toCluster, vhost } from '../../unit/proxy/proxy-test-helpers.ts';

const H2SPEC = join(PEERS_BIN_DIR, 'h2spec');
const MISSING = !existsSync(H2SPEC);

/** `<section> <case description>` → why its failure is accepted. */
const ACCEPTED: Record<string, string> = {
  '3.5 Sends invalid connection preface':
    'the listener serves HTTP/1.1 and HTTP/2 on one port (Envoy\'s auto codec): bytes that are not the preface are read as HTTP/1.1 and answered 400 then closed, which h2spec reads as a malformed frame',
};

interface CaseResult {
  key: string;
  failed: boolean;
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const unescape = (s: string): string => s.replace(/&(amp|lt|gt|quot|#39);/g, (m) => ENTITIES[m]);

/** Cases from h2spec's JUnit report: section (`5.1`, from the package `http2/5.1`) and description. */
function parseReport(xml: string): CaseResult[] {
  const out: CaseResult[] = [];
  for (const part of xml.replaceAll('\u0000', '').split('<testcase ').slice(1)) {
    const pkg = /package="([^"]*)"/.exec(part)?.[1] ?? '';
    const name = unescape(/classname="([^"]*)"/.exec(part)?.[1] ?? '');
    const body = part.slice(0, part.indexOf('</testcase>') >= 0 ? part.indexOf('</testcase>') : part.length);
    const section = pkg.slice(pkg.indexOf('/') + 1);
    out.push({ key: `${pkg.split('/')[0]} ${section} ${name}`, failed: /<(failure|error)[\s>]/.test(body) });
  }
  return out;
}

const ANSI_COLOR = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');
const stripColors = (s: string): string => s.replace(ANSI_COLOR, '');

function runH2spec(port: number, report: string): Promise<string> {
  return new Promise((resolve) => {
    // Not spawnSync: the proxy under test runs in this process.
    execFile(H2SPEC, ['-h', '127.0.0.1', '-p', String(port), '-o', '2', '--junit-report', report], { maxBuffer: 16 << 20 }, (_err, stdout) => resolve(String(stdout)));
  });
}

describe('h2spec against the proxy\'s HTTP/2 listeners', { skip: MISSING && process.env.CI !== 'true' ? 'h2spec missing; install it with: node_modules/.bin/node test/peers/install.ts h2spec' : false }, () => {
  let app: Upstream;
  let proxy: RunningProxy;
  let dir: string;
  const ports: Record<string, number> = {};

  before(async () => {
    assert.ok(!MISSING, `h2spec not found at ${H2SPEC}; install it with: node_modules/.bin/node test/peers/install.ts h2spec`);
    dir = mkdtempSync(join(tmpdir(), 'jibe-h2spec-'));
    app = await startUpstream('app');
    ports.inbound = await freePort();
    ports.gateway = await freePort();
    proxy = await startSidecar();
    await proxy.apply(
      fullUpdate([
        listener('inbound-h2spec', 'inbound', ports.inbound, 'routes'),
        listener('gateway-h2spec', 'gateway', ports.gateway, 'routes'),
        routeConfig('routes', [vhost('all', ['*'], [route('all', [], toCluster('app'))])]),
        cluster('app'),
        endpoints('app', [app.port]),
      ]),
    );
  });

  after(async () => {
    await proxy?.close();
    await app?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['inbound', 'gateway']) {
    it(`${kind} listener: every case passes but the accepted ones`, async () => {
      const report = join(dir, `${kind}.xml`);
      const stdout = await runH2spec(ports[kind], report);
      assert.ok(existsSync(report), `h2spec wrote no report:\n${stdout.slice(-2000)}`);
      const results = parseReport(readFileSync(report, 'latin1'));
      assert.ok(results.length >= 140, `h2spec ran only ${results.length} cases:\n${stdout.slice(-2000)}`);
      const accepted = new Set(Object.keys(ACCEPTED).map((k) => `http2 ${k}`));
      const unexpected = results.filter((r) => r.failed && !accepted.has(r.key)).map((r) => r.key);
      assert.deepEqual(unexpected, [], `cases failing that are not accepted:\n${stripColors(stdout).slice(-6000)}`);
      // Every accepted case must exist, so a renamed case cannot hide a failure.
      const known = new Set(results.map((r) => r.key));
      assert.deepEqual([...accepted].filter((k) => !known.has(k)), []);
    });
  }
});
