// An operator's own PKI, made with openssl as an operator would: a root, a
// server certificate for the gateway's host, a client certificate from that
// root, and a client certificate from an unrelated root (to be refused).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OperatorPki {
  dir: string;
  /** Absolute paths of the PEM files. */
  files: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; strangerCert: string; strangerKey: string };
  pem: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; strangerCert: string; strangerKey: string };
}

function openssl(cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function root(cwd: string, name: string, cn: string): void {
  openssl(cwd, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/O=Operator/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function leaf(cwd: string, name: string, ca: string, cn: string, san: string, usage: string): void {
  openssl(cwd, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  const ext = join(cwd, `${name}.ext`);
  execFileSync('sh', ['-c', `printf 'subjectAltName=${san}\\nextendedKeyUsage=${usage}\\nbasicConstraints=CA:FALSE\\n' > '${ext}'`]);
  openssl(cwd, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-out', `${name}.crt`, '-extfile', ext]);
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

export async function makeOperatorPki(host: string): Promise<OperatorPki> {
  const dir = await mkdtemp(join(tmpdir(), 'jibe-operator-pki-'));
  root(dir, 'ca', 'Operator Root');
  root(dir, 'stranger-ca', 'Stranger Root');
  leaf(dir, 'server', 'ca', host, `DNS:${host}`, 'serverAuth');
  leaf(dir, 'client', 'ca', 'client', 'DNS:client.example.com', 'clientAuth');
  leaf(dir, 'stranger', 'stranger-ca', 'stranger', 'DNS:client.example.com', 'clientAuth');
  const files = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    strangerCert: join(dir, 'stranger.crt'),
    strangerKey: join(dir, 'stranger.key'),
  };
  const pem = Object.fromEntries(await Promise.all(Object.entries(files).map(async ([k, f]) => [k, await readFile(f, 'utf8')]))) as OperatorPki['pem'];
  await writeFile(join(dir, 'README'), 'test PKI, deleted with the test\n');
  return { dir, files, pem };
}
