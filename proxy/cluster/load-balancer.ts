// Load balancers pick one healthy endpoint of a cluster per request. Each
// policy is a factory registered by its LbPolicy name (as grpc-js registers
// its balancers); an unknown or duplicate name is a typed error. A balancer is
// built over an immutable list of healthy hosts and rebuilt when endpoints
// change, so `pick` never filters or allocates.
import type { ConsistentHash } from '../../core/model/proxy-config.ts';
import { JibeError } from '../../core/errors/errors.ts';
import type { Exchange } from '../http/exchange.ts';
import type { UpstreamHost } from './upstream-pool.ts';

export interface LoadBalancer {
  /**
   * A host to send the next request to; undefined when there is none (no
   * healthy upstream). Only balancers that hash the request (RING_HASH) read
   * `ex`; the others ignore it, so their pick stays as cheap as before.
   */
  pick(ex?: Exchange): UpstreamHost | undefined;
}

export interface LoadBalancerInput {
  /** Healthy hosts only. */
  hosts: readonly UpstreamHost[];
  /** Endpoint weights parallel to `hosts`, or undefined when all are equal. */
  weights: readonly number[] | undefined;
  /** Source of randomness in [0, 1); Math.random unless a test pins it. */
  random: () => number;
  /** RING_HASH: what to hash (the cluster's consistentHash). */
  consistentHash?: ConsistentHash;
  /** PASSTHROUGH: the cluster's host (and pool) for an address not among its endpoints. */
  hostOf?: (address: string, port: number) => UpstreamHost;
}

export type LoadBalancerFactory = (input: LoadBalancerInput) => LoadBalancer;

export class UnknownLoadBalancerError extends JibeError {
  readonly policy: string;
  constructor(policy: string, known: readonly string[]) {
    super('JIBE_ERR_PLUGIN_UNKNOWN', `unknown load balancer policy '${policy}'`, {
      hint: `use one of ${known.join(', ')}`,
    });
    this.policy = policy;
  }
}

export class LoadBalancerRegistry {
  private readonly factories = new Map<string, LoadBalancerFactory>();

  register(policy: string, factory: LoadBalancerFactory): void {
    if (this.factories.has(policy)) {
      throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `load balancer policy '${policy}' is already registered`);
    }
    this.factories.set(policy, factory);
  }

  has(policy: string): boolean {
    return this.factories.has(policy);
  }

  names(): string[] {
    return [...this.factories.keys()];
  }

  /** @throws UnknownLoadBalancerError */
  create(policy: string, input: LoadBalancerInput): LoadBalancer {
    const factory = this.factories.get(policy);
    if (factory === undefined) throw new UnknownLoadBalancerError(policy, this.names());
    return factory(input);
  }
}

/** The balancer of a cluster with no healthy endpoint. */
export const EMPTY_LOAD_BALANCER: LoadBalancer = { pick: () => undefined };

/** Weights parallel to hosts, or undefined when they are all equal (the common, faster case). */
export function effectiveWeights(weights: readonly number[]): number[] | undefined {
  for (let i = 1; i < weights.length; i++) {
    if (weights[i] !== weights[0]) return weights.slice();
  }
  return undefined;
}
