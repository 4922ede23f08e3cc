// Shared pieces of the discovery tests: a ConfigSource over a Map, a proxy that
// records what it applied, a raw stream that never ACKs, and a bounded poll.
import * as grpc from '@grpc/grpc-js';
import type { ConfigSource } from '../../../core/discovery/discovery-server.ts';
import { discoveryService, nodeToWire } from '../../../core/discovery/discovery-protocol.ts';
import type { DiscoveryClientStream, DiscoveryServiceClient, WireDiscoveryResponse } from '../../../core/discovery/discovery-protocol.ts';
import type { ClusterResource, ConfigUpdate, ProxyNode, ProxyResource } from '../../../core/model/proxy-config.ts';
import { DiscoveryClient } from '../../../proxy/discovery/discovery-client.ts';

/** Resources shared by every node; `unknownNodes` makes build throw for those ids. */
export class MapConfigSource implements ConfigSource {
  readonly resources = new Map<string, ProxyResource>();
  readonly unknownNodes = new Set<string>();
  builds = 0;
  #version = 1;
  readonly #listeners = new Set<() => void>();

  constructor(initial: ProxyResource[] = []) {
    for (const r of initial) this.resources.set(`${r.type}/${r.name}`, r);
  }

  version(): string {
    return String(this.#version);
  }

  build(node: ProxyNode): ProxyResource[] {
    this.builds++;
    if (this.unknownNodes.has(node.id)) throw new Error(`unknown node ${node.id}: no workload registered under that name`);
    return [...this.resources.values()];
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  set(resource: ProxyResource): void {
    this.resources.set(`${resource.type}/${resource.name}`, resource);
    this.#changed();
  }

  delete(type: ProxyResource['type'], name: string): void {
    this.resources.delete(`${type}/${name}`);
    this.#changed();
  }

  #changed(): void {
    this.#version++;
    for (const listener of this.#listeners) listener();
  }
}

export function cluster(name: string, port = 80, extra: Partial<ClusterResource> = {}): ClusterResource {
  return { type: 'cluster', name, service: `${name}.default.svc.cluster.local`, port, lbPolicy: 'ROUND_ROBIN', protocol: 'http1', ...extra };
}

export function sidecar(id: string): ProxyNode {
  return { id, type: 'sidecar', namespace: 'default', workload: id, labels: { app: id } };
}

/** A DiscoveryClient whose apply keeps the config in a Map the way a proxy would. */
export class RecordingProxy {
  readonly client: DiscoveryClient;
  readonly config = new Map<string, ProxyResource>();
  /** Every update the proxy applied, in order. */
  readonly applied: ConfigUpdate[] = [];
  /** Returns a reason to refuse an update, or undefined to accept it. */
  refuse: (update: ConfigUpdate) => string | undefined = () => undefined;

  constructor(address: string, node: ProxyNode) {
    this.client = new DiscoveryClient({
      address,
      node,
      backoff: { initialMs: 20, maxMs: 200 },
      apply: (update) => {
        const reason = this.refuse(update);
        if (reason) throw new Error(reason);
        if (update.full) this.config.clear();
        for (const ref of update.removes) this.config.delete(`${ref.type}/${ref.name}`);
        for (const r of update.upserts) this.config.set(`${r.type}/${r.name}`, r);
        this.applied.push(update);
      },
    });
    this.client.start();
  }

  /** Port of the cluster the proxy holds under that name. */
  clusterPort(name: string): number | undefined {
    return (this.config.get(`cluster/${name}`) as ClusterResource | undefined)?.port;
  }

  names(): string[] {
    return [...this.config.keys()].sort();
  }

  stop(): Promise<void> {
    return this.client.stop();
  }
}

/** A raw stream that announces a node, then neither reads nor ACKs until told to: the stuck proxy. */
export class SilentProxy {
  readonly #client: DiscoveryServiceClient;
  readonly call: DiscoveryClientStream;
  readonly #status: Promise<grpc.StatusObject>;

  constructor(address: string, node: ProxyNode | null) {
    const ServiceClient = discoveryService();
    this.#client = new ServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    this.call = this.#client.StreamResources();
    this.#status = new Promise((resolve) => this.call.on('status', resolve));
    this.call.on('error', () => {});
    this.call.write({ node: node ? nodeToWire(node) : null, versionInfo: '', responseNonce: '' });
  }

  /** Starts reading and resolves with the stream's final status (grpc drops unread messages once an error status arrives). */
  async drainToStatus(): Promise<{ responses: WireDiscoveryResponse[]; status: grpc.StatusObject }> {
    const responses: WireDiscoveryResponse[] = [];
    this.call.on('data', (r: WireDiscoveryResponse) => responses.push(r));
    const status = await this.#status;
    return { responses, status };
  }

  close(): void {
    this.call.cancel();
    this.#client.close();
  }
}

/** Polls until `condition` holds; fails with `what` after `timeoutMs` (a bound, not a timing assertion). */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
