// Locality-aware balancing as Envoy does it: endpoints sit in priority levels
// (0 = preferred, from DestinationRule localityLbSetting compiled for this
// proxy) and, with `distribute`, in weighted localities within a level.
//
// Each level's health is its share of endpoints in service (not unhealthy, not
// ejected) × the overprovisioning factor (1.4), capped at 100%. Level 0 takes
// as much traffic as its health; what it cannot take spills to level 1, and
// so on. When the levels together are under 100% healthy the loads are scaled
// up to add to 100 (Envoy's normalisation), so traffic still flows. Locality
// weights are scaled by each locality's health the same way.
//
// Built once per endpoint or ejection change (like every balancer here), so a
// pick is one random number, a walk over a handful of levels and the chosen
// group's own balancer.
import type { LocalityLb } from '../../core/model/proxy-config.ts';
import type { LoadBalancer } from './load-balancer.ts';
import type { UpstreamHost } from './upstream-pool.ts';

export interface LocalityBalancerInput {
  config: LocalityLb;
  /** Hosts in service, with their weights, priorities and localities (parallel arrays). */
  hosts: readonly UpstreamHost[];
  weights: readonly number[];
  priorities: readonly number[];
  localities: readonly string[];
  /**
   * Endpoints the config lists (weight > 0, in service or not), by `<priority>`
   * and `<priority>|<locality>`: the denominators of health.
   */
  totals: ReadonlyMap<string, number>;
  random: () => number;
  /** The cluster's own policy over one group of hosts. */
  create(hosts: UpstreamHost[], weights: number[]): LoadBalancer;
}

interface Group {
  /** Cumulative share (0–1) at which this group's range ends. */
  upTo: number;
  pick: LoadBalancer['pick'];
}

interface Level {
  upTo: number;
  groups: Group[];
}

class LocalityBalancer implements LoadBalancer {
  private readonly levels: Level[];
  private readonly random: () => number;

  constructor(levels: Level[], random: () => number) {
    this.levels = levels;
    this.random = random;
  }

  pick(ex?: Parameters<LoadBalancer['pick']>[0]): UpstreamHost | undefined {
    const levels = this.levels;
    let level = levels[levels.length - 1];
    if (levels.length > 1) {
      const r = this.random();
      for (let i = 0; i < levels.length; i++) {
        if (r < levels[i].upTo) {
          level = levels[i];
          break;
        }
      }
    }
    const groups = level.groups;
    if (groups.length === 1) return groups[0].pick(ex);
    const r = this.random();
    for (let i = 0; i < groups.length - 1; i++) if (r < groups[i].upTo) return groups[i].pick(ex);
    return groups[groups.length - 1].pick(ex);
  }
}

export function createLocalityBalancer(input: LocalityBalancerInput): LoadBalancer | undefined {
  const factor = input.config.overprovisioningFactor / 100;
  const byLevel = new Map<number, number[]>();
  for (let i = 0; i < input.hosts.length; i++) {
    const list = byLevel.get(input.priorities[i]);
    if (list) list.push(i);
    else byLevel.set(input.priorities[i], [i]);
  }
  const health = (inService: number, total: number | undefined) => Math.min(1, (factor * inService) / Math.max(total ?? inService, inService, 1));

  const candidates: Array<{ load: number; groups: Group[] }> = [];
  let remaining = 1;
  for (const priority of [...byLevel.keys()].sort((a, b) => a - b)) {
    const members = byLevel.get(priority)!;
    const groups = buildGroups(input, priority, members, health);
    if (groups.length === 0) continue;
    const load = Math.min(remaining, health(members.length, input.totals.get(String(priority))));
    remaining -= load;
    candidates.push({ load, groups });
  }
  if (candidates.length === 0) return undefined;
  // Under 100% healthy overall: scale the loads up so they still add to 100%.
  const sum = candidates.reduce((s, c) => s + c.load, 0);
  let upTo = 0;
  const levels: Level[] = [];
  for (const c of candidates) {
    if (c.load <= 0) continue;
    upTo += c.load / sum;
    levels.push({ upTo, groups: c.groups });
  }
  if (levels.length === 0) levels.push({ upTo: 1, groups: candidates[0].groups });
  levels[levels.length - 1].upTo = 1;
  return new LocalityBalancer(levels, input.random);
}

/** One group per weighted locality with traffic (distribute), else one for the whole level. */
function buildGroups(input: LocalityBalancerInput, priority: number, members: number[], health: (inService: number, total: number | undefined) => number): Group[] {
  const subset = (indexes: number[]) => input.create(indexes.map((i) => input.hosts[i]), indexes.map((i) => input.weights[i]));
  const weights = input.config.localityWeights;
  if (weights === undefined) return [{ upTo: 1, pick: bind(subset(members)) }];
  const byLocality = new Map<string, number[]>();
  for (const i of members) {
    const list = byLocality.get(input.localities[i]);
    if (list) list.push(i);
    else byLocality.set(input.localities[i], [i]);
  }
  const weighted: Array<{ weight: number; indexes: number[] }> = [];
  for (const [locality, indexes] of [...byLocality].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const weight = (weights[locality] ?? 0) * health(indexes.length, input.totals.get(`${priority}|${locality}`));
    if (weight > 0) weighted.push({ weight, indexes });
  }
  const total = weighted.reduce((s, w) => s + w.weight, 0);
  let upTo = 0;
  return weighted.map((w) => {
    upTo += w.weight / total;
    return { upTo, pick: bind(subset(w.indexes)) };
  });
}

function bind(lb: LoadBalancer): LoadBalancer['pick'] {
  return (ex) => lb.pick(ex);
}
