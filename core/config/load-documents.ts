// Reads rules as users write them: multi-document YAML or JSON, `kind: List`
// wrappers flattened, empty documents skipped. Only the envelope is checked
// here (apiVersion, kind, metadata.name); validate-resource.ts checks the rest.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { JibeError } from '../errors/errors.ts';
import type { Resource, ResourceSource } from '../model/resource.ts';
import { kindInfo } from '../model/resource.ts';

export interface ParsedDocument {
  resource: Resource;
  source: ResourceSource;
}

const RULE_FILE = /\.(ya?ml|json)$/i;

/**
 * Parses every document of a YAML or JSON text. Throws one JibeError for the
 * first problem (JIBE_ERR_YAML_PARSE or JIBE_ERR_SCHEMA), with any further
 * problems of the text as its causes, so a user fixes them in one round.
 */
export function parseDocuments(text: string, file?: string): ParsedDocument[] {
  const problems: JibeError[] = [];
  const documents = collectDocuments(text, file, problems);
  throwProblems(problems);
  return documents;
}

/**
 * Reads files and directories (a directory's *.yaml, *.yml and *.json files,
 * not recursively, in name order) and parses them all before reporting, so
 * every file's problems come out at once.
 */
export async function loadFiles(paths: string[]): Promise<ParsedDocument[]> {
  const files: string[] = [];
  const problems: JibeError[] = [];
  for (const path of paths) {
    try {
      if ((await stat(path)).isDirectory()) {
        const entries = (await readdir(path, { withFileTypes: true }))
          .filter((e) => e.isFile() && RULE_FILE.test(e.name))
          .map((e) => e.name)
          .sort();
        if (entries.length === 0) {
          problems.push(new JibeError('JIBE_ERR_FILE_READ', `directory ${path} holds no .yaml, .yml or .json files`, { file: path, hint: 'point at the rule files or the directory that holds them' }));
        }
        files.push(...entries.map((name) => join(path, name)));
      } else {
        files.push(path);
      }
    } catch (e) {
      problems.push(fileError(path, e));
    }
  }
  const documents: ParsedDocument[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      problems.push(fileError(file, e));
      continue;
    }
    documents.push(...collectDocuments(text, file, problems));
  }
  throwProblems(problems);
  return documents;
}

function fileError(path: string, e: unknown): JibeError {
  const code = (e as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
  return new JibeError('JIBE_ERR_FILE_READ', `cannot read ${path}: ${reason}`, { file: path, hint: 'check the path and its permissions' });
}

function throwProblems(problems: JibeError[]): void {
  if (problems.length === 0) return;
  const [first, ...rest] = problems;
  if (rest.length) first.details.causes = rest;
  throw first;
}

function collectDocuments(text: string, file: string | undefined, problems: JibeError[]): ParsedDocument[] {
  const out: ParsedDocument[] = [];
  // Strict YAML 1.2 with unique keys: a repeated key is almost always a mistake.
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  docs.forEach((doc, documentIndex) => {
    if (doc.errors.length) {
      for (const err of doc.errors) problems.push(syntaxError(err, file, documentIndex));
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push(new JibeError('JIBE_ERR_YAML_PARSE', `document ${documentIndex + 1}: ${(e as Error).message}`, { file, documentIndex }));
      return;
    }
    if (value === null || value === undefined) return;
    collectResources(value, { file, documentIndex }, '', out, problems);
  });
  return out;
}

function syntaxError(err: { message: string; linePos?: Array<{ line: number; col: number }> }, file: string | undefined, documentIndex: number): JibeError {
  const pos = err.linePos?.[0];
  // The yaml package appends " at line L, column C:" and a code excerpt; keep the reason, say the place our way.
  const reason = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const where = pos ? ` at line ${pos.line}:${pos.col}` : '';
  return new JibeError('JIBE_ERR_YAML_PARSE', `invalid YAML${where}: ${reason}`, {
    file,
    documentIndex,
    hint: 'fix the syntax at that line and column; indentation must use spaces, and "key: value" needs a space after the colon',
  });
}

function collectResources(value: unknown, source: ResourceSource, prefix: string, out: ParsedDocument[], problems: JibeError[]): void {
  const fail = (field: string, message: string, hint?: string) =>
    problems.push(new JibeError('JIBE_ERR_SCHEMA', message, { ...source, field: prefix + field, hint }));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const got = Array.isArray(value) ? 'a list' : JSON.stringify(value);
    fail('', `a document must be a mapping with apiVersion, kind, metadata and spec, not ${got}`, Array.isArray(value) ? 'separate resources with --- or wrap them in kind: List with items' : undefined);
    return;
  }
  const doc = value as Record<string, unknown>;
  if (isList(doc)) {
    (doc.items as unknown[]).forEach((item, i) => collectResources(item, source, `${prefix}items[${i}].`, out, problems));
    return;
  }
  let ok = true;
  for (const key of ['apiVersion', 'kind'] as const) {
    if (typeof doc[key] !== 'string' || doc[key] === '') {
      fail(key, doc[key] === undefined ? `${key} is required` : `${key} must be a non-empty string`, key === 'apiVersion' ? 'e.g. apiVersion: networking.istio.io/v1' : 'e.g. kind: VirtualService');
      ok = false;
    }
  }
  const metadata = doc.metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    fail('metadata', metadata === undefined ? 'metadata is required' : 'metadata must be a mapping', 'e.g. metadata: {name: reviews, namespace: default}');
    ok = false;
  } else {
    const name = (metadata as Record<string, unknown>).name;
    if (typeof name !== 'string' || name === '') {
      fail('metadata.name', name === undefined ? 'metadata.name is required' : 'metadata.name must be a non-empty string');
      ok = false;
    }
  }
  if (ok) out.push({ resource: doc as unknown as Resource, source: { ...source } });
}

/** `kind: List` (kubectl's), or a typed list such as `VirtualServiceList`. */
function isList(doc: Record<string, unknown>): boolean {
  if (!Array.isArray(doc.items) || typeof doc.kind !== 'string') return false;
  return doc.kind === 'List' || (doc.kind.endsWith('List') && kindInfo(doc.kind.slice(0, -4)) !== undefined);
}
