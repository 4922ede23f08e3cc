// The envelope every rule has (Kubernetes style), and the kinds Jibe knows.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Set by the config store: changes on every write, used for compare-and-set. */
  resourceVersion?: string;
  creationTimestamp?: string;
}

export interface Resource<K extends string = string, S = unknown> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

/** Where a resource came from, so errors can name the file and document. */
export interface ResourceSource {
  file?: string;
  documentIndex?: number;
}

export interface KindInfo {
  kind: string;
  /** API groups the kind is accepted under; the first is the one Jibe writes. */
  groups: string[];
  version: string;
  namespaced: boolean;
  /** Short names accepted by `jibe get` (like kubectl's). */
  shortNames: string[];
}

const NETWORKING = ['networking.istio.io', 'networking.jibe.dev'];
const SECURITY = ['security.istio.io', 'security.jibe.dev'];
const JIBE = ['jibe.dev'];

export const KINDS: KindInfo[] = [
  { kind: 'VirtualService', groups: NETWORKING, version: 'v1', namespaced: true, shortNames: ['vs', 'virtualservice', 'virtualservices'] },
  { kind: 'DestinationRule', groups: NETWORKING, version: 'v1', namespaced: true, shortNames: ['dr', 'destinationrule', 'destinationrules'] },
  { kind: 'Gateway', groups: NETWORKING, version: 'v1', namespaced: true, shortNames: ['gw', 'gateway', 'gateways'] },
  { kind: 'ServiceEntry', groups: NETWORKING, version: 'v1', namespaced: true, shortNames: ['se', 'serviceentry', 'serviceentries'] },
  { kind: 'WorkloadEntry', groups: NETWORKING, version: 'v1', namespaced: true, shortNames: ['we', 'workloadentry', 'workloadentries'] },
  { kind: 'PeerAuthentication', groups: SECURITY, version: 'v1', namespaced: true, shortNames: ['pa', 'peerauthentication', 'peerauthentications'] },
  { kind: 'AuthorizationPolicy', groups: SECURITY, version: 'v1', namespaced: true, shortNames: ['ap', 'authorizationpolicy', 'authorizationpolicies'] },
  { kind: 'RequestAuthentication', groups: SECURITY, version: 'v1', namespaced: true, shortNames: ['ra', 'requestauthentication', 'requestauthentications'] },
  { kind: 'RateLimit', groups: JIBE, version: 'v1alpha1', namespaced: true, shortNames: ['rl', 'ratelimit', 'ratelimits'] },
  { kind: 'MeshConfig', groups: JIBE, version: 'v1alpha1', namespaced: true, shortNames: ['meshconfig', 'meshconfigs'] },
  { kind: 'ServiceAlias', groups: JIBE, version: 'v1alpha1', namespaced: true, shortNames: ['svcalias', 'servicealias', 'servicealiases'] },
];

/** Versions accepted besides the current one (Istio's older API versions). */
const ACCEPTED_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'];

export function kindInfo(kind: string): KindInfo | undefined {
  return KINDS.find((k) => k.kind === kind);
}

/** Finds a kind by kind name or short name, case-insensitively. */
export function kindByName(name: string): KindInfo | undefined {
  const lower = name.toLowerCase();
  return KINDS.find((k) => k.kind.toLowerCase() === lower || k.shortNames.includes(lower));
}

export function isAcceptedApiVersion(info: KindInfo, apiVersion: string): boolean {
  const [group, version] = apiVersion.split('/');
  return info.groups.includes(group) && (version === info.version || (JIBE.includes(group) ? false : ACCEPTED_VERSIONS.includes(version)));
}

export const DEFAULT_NAMESPACE = 'default';
/** Mesh-wide policies live here, as in Istio. */
export const ROOT_NAMESPACE = 'jibe-system';

/** `VirtualService/default/reviews`: how resources are named in messages and store keys. */
export function resourceKey(r: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${r.kind}/${r.metadata.namespace ?? DEFAULT_NAMESPACE}/${r.metadata.name}`;
}

/** Locale-independent string order, so output is the same on every machine. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Kind, then namespace, then name: the order stores list resources in. */
export function compareResources(a: Resource, b: Resource): number {
  return (
    compareStrings(a.kind, b.kind) ||
    compareStrings(a.metadata.namespace ?? DEFAULT_NAMESPACE, b.metadata.namespace ?? DEFAULT_NAMESPACE) ||
    compareStrings(a.metadata.name, b.metadata.name)
  );
}

export { SECURITY as SECURITY_GROUPS, JIBE as JIBE_GROUPS, NETWORKING as NETWORKING_GROUPS };
