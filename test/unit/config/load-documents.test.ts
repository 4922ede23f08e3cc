import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadFiles, parseDocuments } from '../../../core/config/load-documents.ts';
import { isJibeError } from '../../../core/errors/errors.ts';
import type { JibeError } from '../../../core/errors/errors.ts';
import { fixture } from './fixtures.ts';

function thrown(fn: () => unknown): JibeError {
  try {
    fn();
  } catch (e) {
    assert.ok(isJibeError(e), `expected a JibeError, got ${e}`);
    return e;
  }
  assert.fail('expected an error');
}

async function rejected(p: Promise<unknown>): Promise<JibeError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isJibeError(e), `expected a JibeError, got ${e}`);
    return e;
  }
  assert.fail('expected an error');
}

const VS = (name: string) => `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ${name}\nspec:\n  hosts: [${name}]\n`;

test('multi-document YAML: empty documents are skipped, indices count every document', () => {
  const docs = parseDocuments(`---\n${VS('a')}---\n# nothing here\n---\n${VS('b')}`, 'rules.yaml');
  assert.deepEqual(
    docs.map((d) => [d.resource.metadata.name, d.source]),
    [
      ['a', { file: 'rules.yaml', documentIndex: 0 }],
      ['b', { file: 'rules.yaml', documentIndex: 2 }],
    ],
  );
  assert.deepEqual(docs[0].resource.spec, { hosts: ['a'] });
  assert.deepEqual(parseDocuments(''), []);
  assert.deepEqual(parseDocuments('# only a comment\n'), []);
});

test('JSON documents, and List wrappers (kind: List or a typed list) are flattened', () => {
  const one = parseDocuments(JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw' }, spec: {} }), 'gw.json');
  assert.equal(one[0].resource.kind, 'Gateway');
  const list = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualServiceList',
    items: [
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: {} },
      { apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'y' }, spec: {} }] },
    ],
  };
  const flat = parseDocuments(`${VS('first')}---\n${JSON.stringify(list)}`, 'list.yaml');
  assert.deepEqual(flat.map((d) => [d.resource.metadata.name, d.source.documentIndex]), [['first', 0], ['x', 1], ['y', 1]]);
});

test('a YAML syntax error names file, document and line:column', () => {
  const file = fixture('invalid/syntax-error.yaml');
  const e = thrown(() => parseDocuments(readFileSync(file, 'utf8'), file));
  assert.equal(e.code, 'JIBE_ERR_YAML_PARSE');
  assert.equal(e.details.file, file);
  assert.equal(e.details.documentIndex, 1);
  assert.match(e.message, /line 14:3/);
  assert.match(e.format(), /syntax-error\.yaml \(document 2\)/);
});

test('a repeated key is a syntax error, not a silent override', () => {
  const e = thrown(() => parseDocuments('apiVersion: networking.istio.io/v1\nkind: Gateway\nkind: VirtualService\nmetadata: {name: a}\n', 'dup.yaml'));
  assert.equal(e.code, 'JIBE_ERR_YAML_PARSE');
  assert.match(e.message, /line 3:1/);
});

test('envelope problems: every document is reported, with its field', async () => {
  const e = await rejected(loadFiles([fixture('invalid/envelope.yaml')]));
  const all = [e, ...(e.details.causes ?? [])];
  assert.deepEqual(
    all.map((x) => [x.code, x.details.documentIndex, x.details.field]),
    [
      ['JIBE_ERR_SCHEMA', 0, 'metadata.name'],
      ['JIBE_ERR_SCHEMA', 1, ''],
      ['JIBE_ERR_SCHEMA', 2, 'kind'],
    ],
  );
  assert.ok(all.every((x) => x.details.file === fixture('invalid/envelope.yaml')));
  assert.match(all[1].message, /must be a mapping/);
});

test('an envelope problem inside a List names the item', () => {
  const text = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: {} }] });
  const e = thrown(() => parseDocuments(text, 'l.json'));
  assert.equal(e.details.field, 'items[0].metadata.name');
  assert.equal(e.details.documentIndex, 0);
});

test('loadFiles reads a directory\'s rule files in name order and skips other files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jibe-load-'));
  try {
    await writeFile(join(dir, 'b.yml'), VS('b'));
    await writeFile(join(dir, 'a.yaml'), VS('a'));
    await writeFile(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'c' }, spec: {} }));
    await writeFile(join(dir, 'README.md'), '# not a rule');
    const docs = await loadFiles([dir]);
    assert.deepEqual(docs.map((d) => [d.resource.metadata.name, basename(d.source.file!)]), [['a', 'a.yaml'], ['b', 'b.yml'], ['c', 'c.json']]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadFiles: a missing file is a JIBE_ERR_FILE_READ naming it, reported with the other files\' problems', async () => {
  const missing = fixture('invalid/does-not-exist.yaml');
  const e = await rejected(loadFiles([fixture('bookinfo/gateway.yaml'), missing, fixture('invalid/syntax-error.yaml')]));
  assert.equal(e.code, 'JIBE_ERR_FILE_READ');
  assert.equal(e.details.file, missing);
  assert.match(e.message, /does-not-exist\.yaml: no such file or directory/);
  assert.deepEqual(e.details.causes?.map((c) => c.code), ['JIBE_ERR_YAML_PARSE']);
});

test('loadFiles: an empty directory is an error, not a silent no-op', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jibe-load-'));
  try {
    const e = await rejected(loadFiles([dir]));
    assert.equal(e.code, 'JIBE_ERR_FILE_READ');
    assert.match(e.message, /holds no \.yaml, \.yml or \.json files/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
