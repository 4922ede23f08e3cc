// Every error a user can see has a stable code, one class, and a place in
// core/errors/README.md (a unit test keeps the two in step). Users see what
// failed, where (file, resource, field), and what to do.

export interface ErrorLocation {
  /** File the offending document came from, when known. */
  file?: string;
  /** Index of the document inside a multi-document YAML file (0-based). */
  documentIndex?: number;
  /** `Kind/namespace/name` of the resource. */
  resource?: string;
  /** JSON path of the field inside the resource, e.g. `spec.http[0].route[1].weight`. */
  field?: string;
}

export interface JibeErrorDetails extends ErrorLocation {
  /** What the user should do about it. */
  hint?: string;
  /** Further errors gathered in the same operation (validation reports all). */
  causes?: JibeError[];
}

/** The catalogue of codes. Adding a code here requires documenting it in README.md. */
export const ErrorCodes = {
  JIBE_ERR_YAML_PARSE: 'A file is not valid YAML or JSON.',
  JIBE_ERR_UNKNOWN_KIND: 'A document has an apiVersion/kind that Jibe does not know.',
  JIBE_ERR_SCHEMA: 'A resource does not match the schema of its kind.',
  JIBE_ERR_REFERENCE: 'A resource refers to a host, subset, gateway or port that does not exist.',
  JIBE_ERR_WEIGHTS: 'The weights of a route do not add up to 100.',
  JIBE_ERR_DUPLICATE: 'The same resource appears twice in one apply.',
  JIBE_ERR_NOT_FOUND: 'The named resource does not exist.',
  JIBE_ERR_CONFLICT: 'A resource changed since it was read (compare-and-set failed).',
  JIBE_ERR_VALIDATION: 'An apply was rejected as a whole; the causes list each problem.',
  JIBE_ERR_STORE_IO: 'The local data directory could not be read or written.',
  JIBE_ERR_STORE_CORRUPT: 'A file in the data directory is not what Jibe wrote.',
  JIBE_ERR_PORT_IN_USE: 'A port Jibe needs is already taken by another process.',
  JIBE_ERR_CONTROL_PLANE_UNREACHABLE: 'The control plane did not answer at the given address.',
  JIBE_ERR_CONFIG_REJECTED: 'A proxy refused (NACKed) the config it was sent.',
  JIBE_ERR_PLUGIN_UNKNOWN: 'No plugin is registered under that name.',
  JIBE_ERR_PLUGIN_DUPLICATE: 'Two plugins were registered under one name.',
  JIBE_ERR_WORKLOAD_INVALID: 'A workload registration is missing or has invalid fields.',
  JIBE_ERR_BAD_REQUEST: 'An API request was malformed.',
  JIBE_ERR_PROCESS: 'A process that Jibe started exited unexpectedly.',
  JIBE_ERR_FILE_READ: 'A file or directory named by the user could not be read.',
  JIBE_ERR_CSR_REJECTED: 'The CA refused a certificate signing request (bad signature, weak key, or a name other than the proven identity).',
  JIBE_ERR_UNAUTHENTICATED: 'A credential presented to the control plane proves no identity.',
  JIBE_ERR_CA_INVALID: 'The CA certificate or key (plug-in files or the stored root) cannot be used.',
  JIBE_ERR_CAPTURE: 'Installing, checking or removing traffic capture (iptables) failed.',
  JIBE_ERR_CAPTURE_CONFIG: 'A traffic capture option is invalid.',
  JIBE_ERR_JOIN_TOKEN: 'A VM join token is malformed, expired, revoked, used up, or made for another control plane.',
  JIBE_ERR_AGENT: 'The node agent cannot join, resume or leave with the state it has.',
  JIBE_ERR_FORBIDDEN: 'A proven identity asked for something only another identity (or the operator) may do.',
  JIBE_ERR_CONSUL: 'Consul could not be reached, refused the request (ACL), or answered with an error.',
  JIBE_ERR_KUBERNETES: 'The Kubernetes API server could not be reached, refused the request (RBAC), or answered with an error.',
  JIBE_ERR_PROXY_UNREACHABLE: 'No proxy answered at the metrics or admin addresses `jibe stat` / `jibe top` read.',
  JIBE_ERR_SERVICE_CONFLICT: 'Platforms that serve one host disagree on its ports or protocols, or two ServiceAliases claim one service.',
  JIBE_ERR_STORE_CONFLICT: 'One rule is defined differently in two config stores.',
  JIBE_ERR_WORKLOAD_STALE: "A VM's node agent stopped reporting: its registration outlived the stale limit.",
  JIBE_ERR_INSECURE_API: 'A credential would go to the control plane API unprotected: plaintext to an address off loopback, or TLS without roots to verify the server.',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class JibeError extends Error {
  readonly code: ErrorCode;
  readonly details: JibeErrorDetails;

  constructor(code: ErrorCode, message: string, details: JibeErrorDetails = {}) {
    super(message);
    this.name = 'JibeError';
    this.code = code;
    this.details = details;
  }

  /** One line per problem, in the form users read: `file (doc 2) VirtualService/default/reviews spec.http[0]: message`. */
  format(): string {
    const lines = [formatOne(this)];
    for (const cause of this.details.causes ?? []) lines.push('  - ' + formatOne(cause));
    if (this.details.hint && this.details.causes?.length) lines.push('  hint: ' + this.details.hint);
    return lines.join('\n');
  }

  toJSON(): Record<string, unknown> {
    const { causes, ...rest } = this.details;
    return {
      code: this.code,
      message: this.message,
      ...rest,
      ...(causes?.length ? { causes: causes.map((c) => c.toJSON()) } : {}),
    };
  }

  /** Rebuilds an error sent over the API as JSON. */
  static fromJSON(json: unknown): JibeError {
    const o = (json ?? {}) as Record<string, unknown>;
    const code = (typeof o.code === 'string' && o.code in ErrorCodes ? o.code : 'JIBE_ERR_BAD_REQUEST') as ErrorCode;
    const causes = Array.isArray(o.causes) ? o.causes.map((c) => JibeError.fromJSON(c)) : undefined;
    const { code: _c, message, causes: _causes, ...details } = o;
    return new JibeError(code, String(message ?? 'unknown error'), { ...(details as JibeErrorDetails), causes });
  }
}

function formatOne(e: JibeError): string {
  const where: string[] = [];
  if (e.details.file) where.push(e.details.documentIndex !== undefined ? `${e.details.file} (document ${e.details.documentIndex + 1})` : e.details.file);
  if (e.details.resource) where.push(e.details.resource);
  if (e.details.field) where.push(e.details.field);
  const prefix = where.length ? where.join(' ') + ': ' : '';
  const hint = e.details.hint && !e.details.causes?.length ? ` (${e.details.hint})` : '';
  return `${e.code}: ${prefix}${e.message}${hint}`;
}

export function isJibeError(e: unknown): e is JibeError {
  return e instanceof JibeError;
}
