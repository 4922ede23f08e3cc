// Field paths as users read them: `spec.http[0].route[1].weight`, and
// `spec.http[0].match[0].headers["end-user"]` for keys that are not identifiers.

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Appends a property name or array index to a field path. */
export function joinField(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (IDENTIFIER.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

/**
 * Converts a JSON pointer as ajv reports it (`/http/0/route/1/weight`) into a
 * field path under `base`. Ajv's pointers do not say whether a segment is an
 * array index or a map key made of digits, so the instance is walked to tell.
 */
export function pointerToField(base: string, pointer: string, root: unknown): string {
  if (!pointer) return base;
  let field = base;
  let node = root;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(segment)) {
      field = joinField(field, Number(segment));
      node = node[Number(segment)];
    } else {
      field = joinField(field, segment);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[segment] : undefined;
    }
  }
  return field;
}
