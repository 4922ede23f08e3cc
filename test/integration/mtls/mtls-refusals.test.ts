// Who a STRICT workload refuses, and that the log names why: no certificate
// (also an independent `openssl s_client`), a certificate of another CA, an
// expired one, one of another trust domain. Also: root rotation and
// certificate rotation under steady load lose no request, and the CA key
// file is private to its owner.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { CertificateAuthority } from '../../../core/ca/certificate-authority.ts';
import { request } from '../../unit/proxy/proxy-test-helpers.ts';
import { openStore } from '../../unit/ca/ca-fixtures.ts';
import { PRODUCTPAGE, REVIEWS, issue, openCa, startClientSide, startServerSide } from './mtls-fixtures.ts';
import type { ServerSide } from './mtls-fixtures.ts';
import { hasOpenssl } from './operator-certs.ts';

const closers: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

/** Dials with `options` and resolves with the HTTP answer, or rejects when the server cut the connection. */
function dialTls(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1', 'istio'], ...options }, () => socket.write('GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n'));
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('end', () => (data === '' ? reject(new Error('closed without an answer')) : resolve(data)));
    socket.on('error', reject);
  });
}

function refusedFor(server: ServerSide, reason: string): boolean {
  return server.lines.some((l) => l.msg === 'TLS client refused' && l.reason === reason);
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('a STRICT workload refuses', () => {
  it('a client without a certificate, another CA, an expired certificate, another trust domain — and says which', async () => {
    const { ca } = await openCa();
    const server = await startServerSide(await issue(ca, REVIEWS), { mtls: 'STRICT' });
    closers.push(() => server.proxy.close(), () => server.app.close());

    await assert.rejects(dialTls(server.port, {}), /closed without an answer|ECONNRESET|certificate required|alert/i);
    await until(() => refusedFor(server, 'no_certificate'));
    assert.ok(refusedFor(server, 'no_certificate'), JSON.stringify(server.lines));

    const { ca: other } = await openCa();
    const foreign = await issue(other, PRODUCTPAGE);
    await assert.rejects(dialTls(server.port, { key: foreign.keyPem, cert: foreign.certChainPem }), /closed without an answer|ECONNRESET|alert/i);
    await until(() => refusedFor(server, 'unknown_ca'));
    assert.ok(refusedFor(server, 'unknown_ca'));

    // A CA living two days in the past: its leaves expired a day ago; its root is made trusted so only the expiry is wrong.
    const { store } = await openStore();
    const twoDaysAgo = Date.now() - 48 * 3600_000;
    const past = await CertificateAuthority.open(store, { trustDomain: 'cluster.local', now: () => twoDaysAgo });
    server.identity!.setPushedRoots([...ca.trustBundle(), ...past.trustBundle()]);
    const expired = await issue(past, PRODUCTPAGE);
    await assert.rejects(dialTls(server.port, { key: expired.keyPem, cert: expired.certChainPem }), /closed without an answer|ECONNRESET|alert/i);
    await until(() => refusedFor(server, 'expired'));
    assert.ok(refusedFor(server, 'expired'), JSON.stringify(server.lines));

    const { store: otherDomainStore } = await openStore();
    const otherDomain = await CertificateAuthority.open(otherDomainStore, { trustDomain: 'example.org' });
    server.identity!.setPushedRoots([...ca.trustBundle(), ...otherDomain.trustBundle()]);
    const wrong = await issue(otherDomain, 'spiffe://example.org/ns/default/sa/productpage');
    await assert.rejects(dialTls(server.port, { key: wrong.keyPem, cert: wrong.certChainPem }), /closed without an answer|ECONNRESET|alert/i);
    await until(() => refusedFor(server, 'wrong_identity'));
    assert.ok(refusedFor(server, 'wrong_identity'));

    assert.equal(server.app.requests.length, 0, 'no refused client reached the app');
    const good = await issue(ca, PRODUCTPAGE);
    assert.match(await dialTls(server.port, { key: good.keyPem, cert: good.certChainPem }), /^HTTP\/1.1 200/);
  });

  it('openssl s_client without a certificate gets no answer; with a mesh certificate it gets one', async (t) => {
    const { ca, dataDir } = await openCa();
    const server = await startServerSide(await issue(ca, REVIEWS), { mtls: 'STRICT' });
    closers.push(() => server.proxy.close(), () => server.app.close());
    if (!hasOpenssl()) {
      if (process.env.CI === 'true') assert.fail('openssl is required in CI');
      t.skip('openssl not installed');
      return;
    }
    const good = await issue(ca, PRODUCTPAGE);
    await writeFile(join(dataDir, 'c.pem'), good.certChainPem);
    await writeFile(join(dataDir, 'k.pem'), good.keyPem);
    const sClient = (extra: string[]) =>
      new Promise<string>((resolve) => {
        const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-alpn', 'http/1.1', '-quiet', ...extra], { timeout: 10_000 }, (_err, stdout) => resolve(stdout));
        child.stdin!.end('GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n');
      });
    assert.doesNotMatch(await sClient([]), /HTTP\/1.1 200/);
    await until(() => refusedFor(server, 'no_certificate'));
    assert.ok(refusedFor(server, 'no_certificate'));
    assert.match(await sClient(['-cert', join(dataDir, 'c.pem'), '-key', join(dataDir, 'k.pem')]), /HTTP\/1.1 200/);
  });

  it('the CA key file is readable by its owner only', async () => {
    const { dataDir } = await openCa();
    const files = await readdir(dataDir, { recursive: true });
    const keyFiles = files.filter((f) => /ca|root|secret/i.test(String(f)));
    assert.ok(keyFiles.length > 0, `the state store wrote the CA somewhere: ${files.join(', ')}`);
    for (const f of keyFiles) {
      const s = await stat(join(dataDir, String(f)));
      if (s.isFile()) assert.equal(s.mode & 0o077, 0, `${f} is ${(s.mode & 0o777).toString(8)}`);
    }
  });
});

describe('rotation under steady load', () => {
  it('a certificate rotation on both sides and a CA root rotation with overlap lose no request', async () => {
    const { ca } = await openCa();
    const server = await startServerSide(await issue(ca, REVIEWS), { mtls: 'STRICT' });
    const client = await startClientSide(await issue(ca, PRODUCTPAGE));
    closers.push(() => server.proxy.close(), () => server.app.close(), () => client.proxy.close());
    // One request per upstream connection: every request makes a new mTLS handshake with whatever is in force then.
    await client.configure({ port: server.port, mtlsReady: true }, { mode: 'ISTIO_MUTUAL', subjectAltNames: [REVIEWS] }, 'http1', { circuitBreakers: { maxRequestsPerConnection: 1 } });

    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    // Four loops of sequential requests, each on its own connection: every one needs a fresh handshake.
    const loop = async () => {
      while (!stop) {
        try {
          const reply = await request(client.proxy.ports.outbound!, { headers: { host: 'reviews' } });
          if (reply.status === 200) ok++;
          else failures.push(`${reply.status} ${reply.body}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    const settle = async (n: number) => {
      const target = ok + n;
      while (ok < target && failures.length === 0) await new Promise((r) => setTimeout(r, 5));
    };
    await settle(20);
    server.identity!.update(await issue(ca, REVIEWS));
    client.identity!.update(await issue(ca, PRODUCTPAGE));
    await settle(20);
    // Root rotation: the new bundle reaches both proxies (the mesh resource push) before leaves of the new root are used.
    await ca.rotateRoot({ overlapMs: 3600_000 });
    server.identity!.setPushedRoots(ca.trustBundle());
    client.identity!.setPushedRoots(ca.trustBundle());
    await settle(20);
    server.identity!.update(await issue(ca, REVIEWS));
    await settle(20);
    client.identity!.update(await issue(ca, PRODUCTPAGE));
    await settle(20);
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, []);
    assert.ok(ok >= 100, `${ok} requests`);
    assert.ok(server.proxy.stats.ssl_handshake >= 100);
  });
});
