// Keeps the ErrorCodes catalogue and core/errors/README.md in step: a code
// users can see must be documented, and the table must not list codes that
// no longer exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCodes } from '../../../core/errors/errors.ts';

const readme = readFileSync(new URL('../../../core/errors/README.md', import.meta.url), 'utf8');

/** Codes in the first column of the README's table rows. */
function documentedCodes(): string[] {
  const codes: string[] = [];
  for (const line of readme.split('\n')) {
    const m = /^\|\s*`?(JIBE_ERR_[A-Z0-9_]+)`?\s*\|([^|]*)\|([^|]*)\|/.exec(line);
    if (m) {
      assert.ok(m[2].trim() && m[3].trim(), `README row for ${m[1]} must say what it means and what to do`);
      codes.push(m[1]);
    }
  }
  return codes;
}

test('every code in ErrorCodes has a row in core/errors/README.md', () => {
  const documented = new Set(documentedCodes());
  const missing = Object.keys(ErrorCodes).filter((c) => !documented.has(c));
  assert.deepEqual(missing, [], `add a row to core/errors/README.md for: ${missing.join(', ')}`);
});

test('every code in core/errors/README.md exists in ErrorCodes, once', () => {
  const codes = documentedCodes();
  const unknown = codes.filter((c) => !(c in ErrorCodes));
  assert.deepEqual(unknown, [], `README documents codes that ErrorCodes lacks: ${unknown.join(', ')}`);
  const dupes = codes.filter((c, i) => codes.indexOf(c) !== i);
  assert.deepEqual(dupes, [], `README lists codes twice: ${dupes.join(', ')}`);
});
