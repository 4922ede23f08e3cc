// The parts of Consul's HTTP API answers the platform reads. Field names are
// Consul's own (PascalCase); nothing outside platforms/consul sees these types.

export interface ConsulNode {
  ID?: string;
  Node: string;
  Address: string;
  Datacenter?: string;
  Meta?: Record<string, string> | null;
}

export interface ConsulAgentService {
  ID: string;
  /** The service name. */
  Service: string;
  Tags?: string[] | null;
  Meta?: Record<string, string> | null;
  Port: number;
  /** Empty = the node's address. */
  Address?: string;
  /** Absent/'' for a typical service; `connect-proxy` for a sidecar. */
  Kind?: string;
  Proxy?: {
    DestinationServiceName?: string;
    DestinationServiceID?: string;
    LocalServiceAddress?: string;
    LocalServicePort?: number;
  } | null;
  /** Consul Enterprise namespace. */
  Namespace?: string;
  ModifyIndex?: number;
}

export interface ConsulCheck {
  Node: string;
  CheckID: string;
  Name?: string;
  Status: 'passing' | 'warning' | 'critical' | 'maintenance' | string;
  ServiceID: string;
  ServiceName: string;
  ModifyIndex?: number;
}

/** One element of `GET /v1/health/service/<name>`. */
export interface ConsulHealthEntry {
  Node: ConsulNode;
  Service: ConsulAgentService;
  Checks: ConsulCheck[];
}

/** `GET /v1/catalog/services`: service name → tags. */
export type ConsulServiceList = Record<string, string[] | null>;

/** One element of `GET /v1/kv/<prefix>?recurse`. */
export interface ConsulKvEntry {
  Key: string;
  /** base64; null for a key with no value. */
  Value: string | null;
  CreateIndex: number;
  ModifyIndex: number;
  Flags?: number;
}

/** `GET /v1/acl/token/self`. */
export interface ConsulAclToken {
  AccessorID: string;
  Description?: string;
  Local?: boolean;
  Namespace?: string;
  ServiceIdentities?: Array<{ ServiceName: string; Datacenters?: string[] }> | null;
  Policies?: Array<{ ID: string; Name: string }> | null;
  ExpirationTime?: string;
}
