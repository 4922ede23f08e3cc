// The few fields of Kubernetes objects the mesh reads. Declared here (not taken
// from the generated client's classes) so converters stay pure functions over
// plain JSON, exactly what the API server and the fixture files hold.

export interface KubeMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  generateName?: string;
  deletionTimestamp?: string;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: KubeMeta;
}

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface KubeServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface KubeService extends KubeObject {
  spec?: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    clusterIP?: string;
    clusterIPs?: string[];
    externalName?: string;
    ports?: KubeServicePort[];
    selector?: Record<string, string>;
  };
}

export interface KubeEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
}

export interface KubeEndpointSlice extends KubeObject {
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: KubeEndpoint[] | null;
  ports?: Array<{ name?: string; port?: number; protocol?: string; appProtocol?: string }> | null;
}

export interface KubeContainer {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  [field: string]: unknown;
}

export interface KubePodSpec {
  serviceAccountName?: string;
  nodeName?: string;
  containers: KubeContainer[];
  initContainers?: KubeContainer[];
  volumes?: Array<{ name: string; [field: string]: unknown }>;
  [field: string]: unknown;
}

export interface KubePod extends KubeObject {
  spec?: KubePodSpec;
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip: string }>;
    conditions?: Array<{ type: string; status: string }>;
  };
}

export interface KubeNamespace extends KubeObject {
  status?: { phase?: string };
}

/** `namespace/name`: how the caches key namespaced objects. */
export function objectKey(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}
