// The spec schemas must stay reusable as Kubernetes CRD structural schemas and
// cover every kind the model knows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEC_SCHEMAS } from '../../../core/config/schemas/index.ts';
import type { JsonSchema } from '../../../core/config/schemas/index.ts';
import { KINDS } from '../../../core/model/resource.ts';

test('every kind in KINDS has a spec schema, and every schema a kind', () => {
  const kinds = KINDS.map((k) => k.kind);
  assert.deepEqual(kinds.filter((k) => !SPEC_SCHEMAS.has(k)), [], 'add a schema in core/config/schemas/ and a line in its index.ts');
  assert.deepEqual([...SPEC_SCHEMAS.keys()].filter((k) => !kinds.includes(k)), []);
});

const ALLOWED = new Set(['type', 'description', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'enum', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'format']);

function walk(schema: JsonSchema, path: string, visit: (s: JsonSchema, path: string) => void): void {
  visit(schema, path);
  for (const [k, v] of Object.entries(schema.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
  if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${path}{}`, visit);
}

test('schemas are structural: every node typed, only CRD-safe keywords, closed objects', () => {
  for (const [kind, schema] of SPEC_SCHEMAS) {
    walk(schema, kind, (s, path) => {
      assert.ok(s.type, `${path} has no type`);
      for (const key of Object.keys(s)) assert.ok(ALLOWED.has(key), `${path} uses ${key}`);
      if (s.type === 'object') assert.ok(s.properties || s.additionalProperties !== undefined, `${path} is an object with neither properties nor a map value`);
      if (s.properties) assert.equal(s.additionalProperties, false, `${path} must refuse unknown fields`);
      for (const r of s.required ?? []) assert.ok(s.properties?.[r], `${path} requires ${r} but does not declare it`);
    });
  }
});
