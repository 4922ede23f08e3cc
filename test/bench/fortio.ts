// Fortio as the upstream (its echo server) and as the load generator, the tool
// Istio measures its own proxy with, so figures here read like Istio's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startProcess, waitForPort, type ManagedProcess } from './bench-processes.ts';

export interface FortioServer {
  process: ManagedProcess;
  port: number;
}

/** Echo server on 127.0.0.1 only; every other listener fortio would open is disabled. */
export async function startFortioServer(fortio: string, cpus: string): Promise<FortioServer> {
  const port = await freePort();
  const managed = startProcess({
    name: 'fortio server',
    command: fortio,
    cpus,
    args: [
      'server',
      '-http-port', `127.0.0.1:${port}`,
      '-grpc-port', 'disabled',
      '-redirect-port', 'disabled',
      '-tcp-port', 'disabled',
      '-udp-port', 'disabled',
      '-ui-path', '',
      '-loglevel', 'Warning',
    ],
  });
  await waitForPort(managed, port);
  return { process: managed, port };
}

export interface LoadOptions {
  url: string;
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
  /** Requests that did not answer 200 (including connection errors). */
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
  const ok = json.RetCodes?.['200'] ?? 0;
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
