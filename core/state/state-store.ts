// StateStore: the control plane's own durable state (CA keys, VM registrations,
// join tokens). Values are opaque JSON. Every implementation passes
// test/contract/state-store.contract.ts.

export interface StateEntry<T = unknown> {
  key: string;
  value: T;
  /** Opaque version; changes on every write of the key. */
  version: string;
}

export interface PutOptions {
  /**
   * Compare-and-set: write only if the key's current version is this one
   * (`null` = only if the key does not exist). Fails with JIBE_ERR_CONFLICT otherwise.
   */
  ifVersion?: string | null;
  /** Stored with owner-only permissions (0600 on disk) and never logged. */
  secret?: boolean;
}

export interface StateStore {
  get<T = unknown>(key: string): Promise<StateEntry<T> | undefined>;
  put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<StateEntry<T>>;
  /** Deletes; with `ifVersion`, only if unchanged. Returns false if the key did not exist. */
  delete(key: string, options?: { ifVersion?: string }): Promise<boolean>;
  /** Entries whose key starts with `prefix`, sorted by key. */
  list<T = unknown>(prefix: string): Promise<StateEntry<T>[]>;
  close(): Promise<void>;
}
