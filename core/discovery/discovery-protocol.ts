// The discovery stream's wire protocol as both ends see it: the .proto loaded at
// run time, the message shapes proto-loader produces for it, and the node
// conversion. The proxy imports this file, so it stays free of anything but
// grpc-js, proto-loader and core/model (a sidecar's memory matters).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProxyNode, ResourceType } from '../model/proxy-config.ts';

export const DISCOVERY_PROTO_PATH = fileURLToPath(new URL('./discovery.proto', import.meta.url));
export const DISCOVERY_SERVICE_NAME = 'jibe.discovery.v1.AggregatedDiscovery';

// Message shapes as proto-loader decodes them (keepCase false, defaults on):
// absent scalars are '' / 0 / false, absent messages are null.
export interface WireNode {
  id: string;
  type: string;
  namespace: string;
  workload: string;
  platform: string;
  labels: Record<string, string>;
  version: string;
}

export interface WireErrorDetail {
  code: number;
  message: string;
}

export interface WireDiscoveryRequest {
  node?: WireNode | null;
  versionInfo: string;
  responseNonce: string;
  errorDetail?: WireErrorDetail | null;
}

export interface WireResource {
  type: string;
  name: string;
  version: string;
  body: Buffer;
}

export interface WireResourceRef {
  type: string;
  name: string;
}

export interface WireDiscoveryResponse {
  versionInfo: string;
  nonce: string;
  fullState: boolean;
  resources: WireResource[];
  removed: WireResourceRef[];
}

export type DiscoveryServerStream = grpc.ServerDuplexStream<WireDiscoveryRequest, WireDiscoveryResponse>;
export type DiscoveryClientStream = grpc.ClientDuplexStream<WireDiscoveryRequest, WireDiscoveryResponse>;

/** The generated client: `new DiscoveryServiceClient(address, credentials, options).StreamResources()`. */
export interface DiscoveryServiceClient extends grpc.Client {
  StreamResources(metadata?: grpc.Metadata, options?: grpc.CallOptions): DiscoveryClientStream;
}

export interface DiscoveryServiceClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions): DiscoveryServiceClient;
  service: grpc.ServiceDefinition;
}

export const RESOURCE_TYPES: readonly ResourceType[] = ['listener', 'route', 'cluster', 'endpoints', 'mesh'];

export function isResourceType(value: string): value is ResourceType {
  return (RESOURCE_TYPES as readonly string[]).includes(value);
}

let loaded: DiscoveryServiceClientConstructor | undefined;

/** Loads discovery.proto once per process and returns the service client constructor (its `.service` is the server definition). */
export function discoveryService(): DiscoveryServiceClientConstructor {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(DISCOVERY_PROTO_PATH, {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    jibe: { discovery: { v1: { AggregatedDiscovery: DiscoveryServiceClientConstructor } } };
  };
  loaded = root.jibe.discovery.v1.AggregatedDiscovery;
  return loaded;
}

export function nodeToWire(node: ProxyNode): WireNode {
  return {
    id: node.id,
    type: node.type,
    namespace: node.namespace,
    workload: node.workload ?? '',
    platform: node.platform ?? '',
    labels: { ...node.labels },
    version: node.version ?? '',
  };
}

/** Checks the node a proxy announced; returns the problem in words, or the node. */
export function nodeFromWire(wire: WireNode | null | undefined): ProxyNode | string {
  if (!wire) return 'the first DiscoveryRequest of a stream must carry the node';
  if (!wire.id) return 'node.id is empty';
  if (wire.type !== 'sidecar' && wire.type !== 'gateway') return `node.type must be "sidecar" or "gateway", got "${wire.type}"`;
  if (!wire.namespace) return `node ${wire.id}: node.namespace is empty`;
  const node: ProxyNode = { id: wire.id, type: wire.type, namespace: wire.namespace, labels: { ...(wire.labels ?? {}) } };
  if (wire.workload) node.workload = wire.workload;
  if (wire.platform) node.platform = wire.platform;
  if (wire.version) node.version = wire.version;
  return node;
}
