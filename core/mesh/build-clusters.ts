// Outbound clusters and their endpoints: one per (host, port, subset) that a
// proxy may send to. DestinationRules decide the subsets and the load-balancing
// policy; the registry decides the endpoints. Anything a rule names that does
// not exist still gets a cluster — an empty one — so the proxy answers 503 for
// that route instead of the whole config failing to build.
import type { BuildContext, ClusterRequest, IndexedDestinationRule } from './build-context.ts';
import { visibleService } from './build-context.ts';
import { applyConnectionPool, clusterProtocol, compileLoadBalancer, compileOutlierDetection, effectivePolicy } from './build-cluster-policy.ts';
import { applyLocalityLb } from './build-locality-lb.ts';
import type { Caller } from './build-locality-lb.ts';
import { meshSettingsOf } from './mesh-settings.ts';
import { compileUpstreamTls, serviceIdentities, workloadTakesMtls } from './build-tls.ts';
import { compareStrings, hostMatchesPattern, hostSpecificity, isExportedTo, selectorMatches, sortedRecord } from './mesh-match.ts';
import type { Subset } from '../model/networking.ts';
import type { ClusterResource, Endpoint, EndpointsResource, LbPolicy } from '../model/proxy-config.ts';
import { outboundClusterName } from '../model/proxy-config.ts';
import type { Service } from '../model/service.ts';
import type { Locality, Workload } from '../model/workload.ts';
import type { MeshSnapshot } from './mesh-snapshot.ts';

export { DEFAULT_LB_POLICY } from './build-cluster-policy.ts';

/** Records that the proxy needs cluster (host, port, subset) and returns its name. */
export function requestCluster(ctx: BuildContext, host: string, port: number, subset = ''): string {
  const name = outboundClusterName(host, port, subset);
  if (!ctx.clusters.has(name)) ctx.clusters.set(name, { name, host, port, subset });
  return name;
}

/** Requests the plain cluster of a service port and one per subset of its DestinationRule. */
export function requestServiceClusters(ctx: BuildContext, service: Service, port: number): void {
  requestCluster(ctx, service.hostname, port);
  const rule = selectDestinationRule(ctx, service.hostname);
  for (const subset of rule?.dr.spec.subsets ?? []) {
    if (subset?.name) requestCluster(ctx, service.hostname, port, subset.name);
  }
}

/** Every requested cluster with its endpoints, in name order. */
export function buildRequestedClusters(ctx: BuildContext): Array<ClusterResource | EndpointsResource> {
  const out: Array<ClusterResource | EndpointsResource> = [];
  const names = [...ctx.clusters.keys()].sort(compareStrings);
  for (const name of names) {
    const pair = buildClusterPair(ctx, ctx.clusters.get(name)!);
    out.push(pair.cluster, pair.endpoints);
  }
  return out;
}

interface SharedPair {
  visible: Service | undefined;
  rule: IndexedDestinationRule | undefined;
  cluster: ClusterResource;
  endpoints: EndpointsResource;
}

// Most proxies see a cluster alike (same visibility, same DestinationRule, no
// per-caller locality): they share one object per snapshot, so it is built and
// content-hashed once per change instead of once per proxy.
const sharedPairs = new WeakMap<MeshSnapshot, Map<string, SharedPair[]>>();

/**
 * One outbound cluster and its endpoints for this node, as `buildRequestedClusters`
 * emits them (shared with other nodes that see the cluster alike).
 */
export function buildClusterPair(ctx: BuildContext, req: ClusterRequest): { cluster: ClusterResource; endpoints: EndpointsResource } {
  const visible = visibleService(ctx, req.host);
  const rule = selectDestinationRule(ctx, req.host);
  const policy = effectivePolicy(rule?.dr.spec.trafficPolicy, findSubset(rule, req.subset)?.trafficPolicy, req.port);
  // Locality-aware balancing depends on the caller and writes endpoint priorities: never shared.
  if (policy.loadBalancer?.localityLbSetting) {
    const endpoints = buildEndpoints(ctx, req);
    return { cluster: buildCluster(ctx, req, endpoints.endpoints, visible, rule, policy), endpoints };
  }
  let bySnapshot = sharedPairs.get(ctx.snapshot);
  if (!bySnapshot) sharedPairs.set(ctx.snapshot, (bySnapshot = new Map()));
  let list = bySnapshot.get(req.name);
  if (!list) bySnapshot.set(req.name, (list = []));
  for (const pair of list) if (pair.visible === visible && pair.rule === rule) return pair;
  const endpoints = buildEndpoints(ctx, req);
  const pair: SharedPair = { visible, rule, cluster: buildCluster(ctx, req, endpoints.endpoints, visible, rule, policy), endpoints };
  list.push(pair);
  return pair;
}

/**
 * The DestinationRule that governs `host` for this node, as Istio looks it up: the
 * node's own namespace first, then the service's namespace, then the root
 * namespace; within a namespace the most specific host wins, then the oldest rule.
 */
export function selectDestinationRule(ctx: BuildContext, host: string): IndexedDestinationRule | undefined {
  const cached = ctx.destinationRuleCache.get(host);
  if (cached !== undefined) return cached ?? undefined;
  const service = ctx.snapshot.services.get(host);
  const namespaces = [ctx.node.namespace, service?.namespace, ctx.snapshot.settings.rootNamespace];
  let found: IndexedDestinationRule | undefined;
  const seen = new Set<string>();
  for (const ns of namespaces) {
    if (ns === undefined || seen.has(ns)) continue;
    seen.add(ns);
    found = mostSpecificRule(ctx, ctx.index.destinationRules.get(ns), host);
    if (found) break;
  }
  ctx.destinationRuleCache.set(host, found ?? null);
  return found;
}

function mostSpecificRule(ctx: BuildContext, rules: IndexedDestinationRule[] | undefined, host: string): IndexedDestinationRule | undefined {
  let best: IndexedDestinationRule | undefined;
  let bestScore = -1;
  // Rules are oldest first, so a strictly-greater test keeps the oldest among equals.
  for (const rule of rules ?? []) {
    if (!hostMatchesPattern(host, rule.host)) continue;
    if (!isExportedTo(rule.dr.spec.exportTo, rule.namespace, ctx.node.namespace)) continue;
    const score = hostSpecificity(rule.host);
    if (score > bestScore) {
      best = rule;
      bestScore = score;
    }
  }
  return best;
}

function findSubset(rule: IndexedDestinationRule | undefined, name: string): Subset | undefined {
  if (!name || !rule) return undefined;
  return rule.dr.spec.subsets?.find((s) => s?.name === name);
}

/** The load-balancing policy of (port, subset) after Istio's policy merge. */
export function lbPolicyFor(rule: IndexedDestinationRule | undefined, port: number, subsetName: string): LbPolicy {
  return compileLoadBalancer(effectivePolicy(rule?.dr.spec.trafficPolicy, findSubset(rule, subsetName)?.trafficPolicy, port).loadBalancer).lbPolicy;
}

function buildCluster(
  ctx: BuildContext,
  req: ClusterRequest,
  endpoints: Endpoint[],
  service: Service | undefined,
  rule: IndexedDestinationRule | undefined,
  policy: ReturnType<typeof effectivePolicy>,
): ClusterResource {
  const portProtocol = service?.ports.find((p) => p.port === req.port)?.protocol;
  const { lbPolicy, consistentHash } = compileLoadBalancer(policy.loadBalancer);
  const cluster: ClusterResource = { type: 'cluster', name: req.name, service: req.host, port: req.port, lbPolicy, protocol: clusterProtocol(portProtocol, policy.connectionPool) };
  if (req.subset) cluster.subset = req.subset;
  if (consistentHash) cluster.consistentHash = consistentHash;
  applyConnectionPool(cluster, policy.connectionPool);
  const outlierDetection = compileOutlierDetection(policy.outlierDetection);
  if (outlierDetection) cluster.outlierDetection = outlierDetection;
  cluster.retryBudget = { ...meshSettingsOf(ctx.snapshot).retryBudget };
  const tls = compileUpstreamTls(policy.tls, serviceIdentities(ctx, req.host));
  if (tls) cluster.tls = tls;
  const locality = policy.loadBalancer?.localityLbSetting;
  if (locality) applyLocalityLb(cluster, endpoints, locality, callerOf(ctx));
  return cluster;
}

const callers = new WeakMap<BuildContext, Caller | null>();

/** The workload this sidecar fronts, as locality-aware balancing sees it; undefined for gateways and unknown workloads. */
function callerOf(ctx: BuildContext): Caller | undefined {
  const cached = callers.get(ctx);
  if (cached !== undefined) return cached ?? undefined;
  const { node } = ctx;
  const platform = node.platform || 'vm';
  const w = node.type === 'sidecar' && node.workload !== undefined ? ctx.snapshot.workloads.find((x) => x.name === node.workload && x.namespace === node.namespace && x.platform === platform) : undefined;
  const caller: Caller | null = w ? { locality: localityString(w.locality) ?? '', labels: w.labels ?? {}, platform: w.platform } : null;
  callers.set(ctx, caller);
  return caller ?? undefined;
}

function buildEndpoints(ctx: BuildContext, req: ClusterRequest): EndpointsResource {
  return { type: 'endpoints', name: req.name, endpoints: endpointsFor(ctx, req) };
}

function endpointsFor(ctx: BuildContext, req: ClusterRequest): Endpoint[] {
  const service = visibleService(ctx, req.host);
  if (!service) return [];
  let subsetLabels: Record<string, string> | undefined;
  if (req.subset) {
    const subset = findSubset(selectDestinationRule(ctx, req.host), req.subset);
    // A subset no rule defines selects nothing: routing to it must fail visibly (503), not spread over all endpoints.
    if (!subset) return [];
    subsetLabels = subset.labels;
  }
  const workloads = ctx.snapshot.workloadsByService.get(req.host) ?? [];
  if (workloads.length === 0 && service.resolution === 'DNS' && !req.host.includes('*') && isEmpty(subsetLabels)) {
    // A DNS ServiceEntry without endpoints: the proxy resolves the host itself, as Istio's STRICT_DNS cluster does.
    return [{ address: req.host, port: req.port, healthy: true }];
  }
  const endpoints: Endpoint[] = [];
  for (const w of workloads) {
    if (!selectorMatches(subsetLabels, w.labels)) continue;
    const targetPort = w.services.find((b) => b.hostname === req.host)?.ports[req.port];
    if (targetPort === undefined) continue;
    endpoints.push(toEndpoint(w, targetPort));
  }
  endpoints.sort(compareEndpoints);
  return dedupe(endpoints);
}

function toEndpoint(w: Workload, targetPort: number): Endpoint {
  const endpoint: Endpoint = {
    address: w.address,
    // Without traffic capture the workload's sidecar listens on its own port for each app port.
    port: w.proxy?.inboundPorts?.[targetPort] ?? targetPort,
    healthy: w.health === 'healthy',
    workload: w.name,
    namespace: w.namespace,
    identity: w.identity,
    platform: w.platform,
  };
  if (workloadTakesMtls(w)) endpoint.mtlsReady = true;
  const locality = localityString(w.locality);
  if (locality) endpoint.locality = locality;
  endpoint.labels = sortedRecord(w.labels ?? {});
  return endpoint;
}

/** `region/zone/subzone`, trailing empty parts dropped; undefined when there is none. */
export function localityString(l: Locality | undefined): string | undefined {
  if (!l) return undefined;
  const parts = [l.region ?? '', l.zone ?? '', l.subzone ?? ''];
  while (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts.length ? parts.join('/') : undefined;
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return (
    compareStrings(a.address, b.address) ||
    a.port - b.port ||
    compareStrings(a.platform ?? '', b.platform ?? '') ||
    compareStrings(a.namespace ?? '', b.namespace ?? '') ||
    compareStrings(a.workload ?? '', b.workload ?? '')
  );
}

/** One instance registered by two platforms is one endpoint; counting it twice would skew load balancing. */
function dedupe(sorted: Endpoint[]): Endpoint[] {
  let write = 0;
  for (let read = 0; read < sorted.length; read++) {
    const e = sorted[read];
    const prev = write > 0 ? sorted[write - 1] : undefined;
    if (prev && prev.address === e.address && prev.port === e.port) continue;
    sorted[write++] = e;
  }
  sorted.length = write;
  return sorted;
}

function isEmpty(record: Record<string, string> | undefined): boolean {
  if (!record) return true;
  for (const _ in record) return false;
  return true;
}
