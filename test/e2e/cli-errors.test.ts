// Bad input at the command line: one clear message naming what and where, and a non-zero exit.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { freePort } from '../../cli/up/ports.ts';
import { runJibe } from '../helpers/jibe-cli.ts';

function tempFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-cli-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('jibe CLI errors', () => {
  it('says the control plane is not running, and how to start it', async () => {
    const port = await freePort();
    const file = tempFile('vs.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n');
    const res = await runJibe(['apply', '-f', file, '--server', `http://127.0.0.1:${port}`]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /JIBE_ERR_CONTROL_PLANE_UNREACHABLE/);
    assert.match(res.stderr, /jibe up/);
  });

  it('names the file and line of malformed YAML before contacting anything', async () => {
    const file = tempFile('broken.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: [unclosed\n');
    const res = await runJibe(['apply', '-f', file, '--server', 'http://127.0.0.1:1']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /JIBE_ERR_YAML_PARSE/);
    assert.match(res.stderr, /broken\.yaml/);
  });

  it('names a missing file', async () => {
    const res = await runJibe(['apply', '-f', '/nonexistent/rules.yaml']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /\/nonexistent\/rules\.yaml/);
  });

  it('refuses to start a local mesh on a port in use, naming port and flag', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jibe-up-'));
      const res = await runJibe(['up', '--data-dir', dataDir, '--gateway-port', String(port), '--no-bookinfo']);
      assert.equal(res.code, 1);
      assert.match(res.stderr, new RegExp(`JIBE_ERR_PORT_IN_USE: port ${port} is already in use`));
      assert.match(res.stderr, /--gateway-port/);
    } finally {
      blocker.close();
    }
  });

  it('rejects an unknown kind in get', async () => {
    const res = await runJibe(['get', 'frobnicators', '--server', 'http://127.0.0.1:1']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /JIBE_ERR_UNKNOWN_KIND: unknown kind "frobnicators"/);
  });

  it('has --help on every command', async () => {
    for (const args of [[], ['up'], ['apply'], ['get'], ['delete'], ['proxy-status'], ['control-plane'], ['proxy'], ['workload'], ['workload', 'register']]) {
      const res = await runJibe([...args, '--help']);
      assert.equal(res.code, 0, `jibe ${args.join(' ')} --help: ${res.stderr}`);
      assert.match(res.stdout, /Usage: jibe/);
    }
  });
});
