// Fortio as the upstream (its echo server) and as the load generator, the tool
// Istio measures its own proxy with, so figures here read like Istio's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export interface FortioServer {
  process: ManagedProcess;
  port: number;
  /** Its gRPC ping service's port, when started with `grpc`. */
  grpcPort?: number;
}

/** Echo server on 127.0.0.1 only (with its gRPC ping service when `grpc`); every other listener fortio would open is disabled. */
export async function startFortioServer(fortio: string, cpus: string, grpc = false): Promise<FortioServer> {
  const port = await freePort();
  const grpcPort = grpc ? await freePort() : undefined;
  const managed = startProcess({
    name: 'fortio server',
    command: fortio,
    cpus,
    args: [
      'server',
      '-http-port', `127.0.0.1:${port}`,
      '-grpc-port', grpcPort !== undefined ? `127.0.0.1:${grpcPort}` : 'disabled',
      '-redirect-port', 'disabled',
      '-tcp-port', 'disabled',
      '-udp-port', 'disabled',
      '-ui-path', '',
      '-loglevel', 'Warning',
    ],
  });
  await waitForPort(managed, port);
  if (grpcPort !== undefined) await waitForPort(managed, grpcPort);
  return { process: managed, port, grpcPort };
}

export interface LoadOptions {
  /** An http:// URL, or host:port of a gRPC ping service with `grpc`. */
  url: string;
  /** gRPC ping calls (fortio `-grpc -ping`) instead of HTTP requests. */
  grpc?: boolean;
  connections: number;
  /** 0 = as fast as possible. */
  qps: number;
  durationSeconds: number;
  /** Histogram resolution in seconds (fortio `-r`). */
  resolution?: number;
  /**
   * Spread the connections' start times over one pacing interval (fortio `-uniform`).
   * Without it every connection fires at the same instant, so at a fixed rate the
   * target sees bursts of `connections` simultaneous requests.
   */
  uniform?: boolean;
  headers?: string[];
  cpus: string;
  jsonFile: string;
}

export interface LoadResult {
  actualQps: number;
  requests: number;
  /** Requests that did not answer 200 (gRPC: OK/SERVING), including connection errors. */
  errors: number;
  /** Seconds, keyed by percentile (50, 90, 99). */
  percentiles: Map<number, number>;
  avgSeconds: number;
}

interface FortioJson {
  ActualQPS: number;
  RetCodes?: Record<string, number>;
  ErrorsDurationHistogram?: { Count: number };
  DurationHistogram: {
    Count: number;
    Avg: number;
    Percentiles?: Array<{ Percentile: number; Value: number }>;
  };
}

export const PERCENTILES = [50, 90, 99] as const;

export async function runLoad(fortio: string, options: LoadOptions): Promise<LoadResult> {
  const args = [
    'load',
    '-c', String(options.connections),
    '-qps', String(options.qps),
    '-t', `${options.durationSeconds}s`,
    '-p', PERCENTILES.join(','),
    '-json', options.jsonFile,
    '-loglevel', 'Warning',
  ];
  if (options.resolution !== undefined) args.push('-r', String(options.resolution));
  if (options.uniform) args.push('-uniform');
  if (options.grpc) args.push('-grpc', '-ping');
  for (const header of options.headers ?? []) args.push('-H', header);
  args.push(options.url);
  const managed = startProcess({ name: 'fortio load', command: fortio, args, cpus: options.cpus });
  const code = await managed.exited;
  if (code !== 0) throw new Error(`fortio load ${options.url} exited with ${code}:\n${managed.output()}`);
  return parseLoadJson(readFileSync(options.jsonFile, 'utf8'));
}

export function parseLoadJson(text: string): LoadResult {
  const json = JSON.parse(text) as FortioJson;
  const histogram = json.DurationHistogram;
  const codes = json.RetCodes ?? {};
  const ok = (codes['200'] ?? 0) + (codes.OK ?? 0) + (codes.SERVING ?? 0);
  const percentiles = new Map<number, number>();
  for (const entry of histogram.Percentiles ?? []) percentiles.set(entry.Percentile, entry.Value);
  return {
    actualQps: json.ActualQPS,
    requests: histogram.Count,
    errors: histogram.Count - ok,
    percentiles,
    avgSeconds: histogram.Avg,
  };
}

export function loadJsonPath(dir: string, target: string, phase: string, round: number): string {
  return join(dir, `${target}-${phase}-${round}.json`);
}
