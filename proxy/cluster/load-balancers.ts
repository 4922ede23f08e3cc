// The built-in balancers, registered under the LbPolicy names the control
// plane sends.
import { LoadBalancerRegistry } from './load-balancer.ts';
import { createPassthrough } from './load-balancer-passthrough.ts';
import { createLeastRequest } from './load-balancer-least-request.ts';
import { createRandom } from './load-balancer-random.ts';
import { createRingHash } from './load-balancer-ring-hash.ts';
import { createRoundRobin } from './load-balancer-round-robin.ts';

export function createDefaultLoadBalancerRegistry(): LoadBalancerRegistry {
  const registry = new LoadBalancerRegistry();
  registry.register('ROUND_ROBIN', createRoundRobin);
  registry.register('LEAST_REQUEST', createLeastRequest);
  registry.register('RANDOM', createRandom);
  registry.register('PASSTHROUGH', createPassthrough);
  registry.register('RING_HASH', createRingHash);
  return registry;
}

export const defaultLoadBalancers = createDefaultLoadBalancerRegistry();
