// Building blocks for the spec schemas. The schemas are plain JSON Schema
// (draft-07) restricted to what a Kubernetes CRD's structural OpenAPI v3 schema
// also accepts, so they can be reused for CRDs: every node has a type, no $ref,
// no oneOf. Two adjustments when emitting a CRD: drop `additionalProperties:
// false` (Kubernetes prunes and reports unknown fields itself and forbids it
// beside `properties`), and keep `format: duration`, which Kubernetes knows.
// Rules that JSON Schema cannot say structurally (exactly one of exact, prefix,
// regex; weights adding up to 100) are checked in core/config/checks/.

export interface JsonSchema {
  type: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  enum?: Array<string | number>;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
}

/** A closed object: any field not listed is an error (catches typos like `weigth`). */
export function object(properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
}

/** A map with free keys, e.g. labels or headers. */
export function map(values: JsonSchema): JsonSchema {
  return { type: 'object', additionalProperties: values };
}

export function array(items: JsonSchema, minItems?: number): JsonSchema {
  return { type: 'array', items, ...(minItems !== undefined ? { minItems } : {}) };
}

export function integer(minimum?: number, maximum?: number): JsonSchema {
  return { type: 'integer', ...(minimum !== undefined ? { minimum } : {}), ...(maximum !== undefined ? { maximum } : {}) };
}

export function oneOfStrings(values: string[]): JsonSchema {
  return { type: 'string', enum: values };
}

export const string: JsonSchema = { type: 'string' };
export const nonEmptyString: JsonSchema = { type: 'string', minLength: 1 };
export const boolean: JsonSchema = { type: 'boolean' };
export const stringMap: JsonSchema = map(string);
export const stringList: JsonSchema = array(string);

/** Go-style duration (`300ms`, `1.5s`, `1h30m`), checked by the `duration` format. */
export const duration: JsonSchema = { type: 'string', format: 'duration' };

export const portNumber: JsonSchema = integer(1, 65535);

/** Istio's StringMatch. Exactly one field must be set; checks/string-match.ts enforces it. */
export const stringMatch: JsonSchema = object({ exact: string, prefix: string, regex: string });

/** `{value: 0..100}`, Istio's Percent. */
export const percent: JsonSchema = object({ value: { type: 'number', minimum: 0, maximum: 100 } });

export const headerOperations: JsonSchema = object({ set: stringMap, add: stringMap, remove: stringList });
export const headers: JsonSchema = object({ request: headerOperations, response: headerOperations });

export const portSelector: JsonSchema = object({ number: portNumber }, ['number']);

export const destination: JsonSchema = object({ host: nonEmptyString, subset: string, port: portSelector }, ['host']);

/** Istio's Port, as Gateway servers and ServiceEntries declare them; which fields are required differs. */
export function port(required: string[]): JsonSchema {
  return object({ number: portNumber, protocol: string, name: string, targetPort: portNumber }, required);
}

export const exportTo: JsonSchema = stringList;
