// What a kind's semantic check receives. Checks run even when the schema
// failed (so one round shows every problem), hence the defensive accessors:
// the spec is user input of any shape.
import type { ErrorCode } from '../../errors/errors.ts';
import { joinField } from '../field-path.ts';

export type Report = (code: ErrorCode, field: string, message: string) => void;

/** Checks the meaning of one resource's `spec`; reports problems, never throws. */
export type SpecCheck = (spec: Record<string, unknown>, report: Report) => void;

export function asObject(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Calls `fn` for every element of `list` that is an object, with its field path. */
export function eachObject(list: unknown, field: string, fn: (o: Record<string, unknown>, field: string, index: number) => void): void {
  asArray(list).forEach((item, i) => {
    const o = asObject(item);
    if (o) fn(o, `${field}[${i}]`, i);
  });
}

/** Calls `fn` for every string entry of a string map, with its field path. */
export function eachEntry(map: unknown, field: string, fn: (key: string, value: unknown, field: string) => void): void {
  const o = asObject(map);
  if (!o) return;
  for (const [k, v] of Object.entries(o)) fn(k, v, joinField(field, k));
}

/** `a`, `a and b`, `a, b and c`: for messages. */
export function listWords(words: string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}
