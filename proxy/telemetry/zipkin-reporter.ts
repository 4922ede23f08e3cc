// Reports finished spans to a Zipkin collector (`POST /api/v2/spans`, Zipkin
// v2 JSON), batched and bounded. Traffic never waits for it: `report` only
// pushes onto a bounded queue (full = the span is dropped and counted), one
// POST is in flight at a time with a timeout, and a dead or slow collector
// costs dropped spans, never latency or memory.
import type { Agent } from 'node:http';
import http from '../http/node-http.ts';

/** Zipkin v2 span (the subset Jibe sends). */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: 'CLIENT' | 'SERVER' | 'PRODUCER' | 'CONSUMER';
  /** Epoch microseconds. */
  timestamp: number;
  /** Microseconds. */
  duration: number;
  localEndpoint: { serviceName: string; ipv4?: string; ipv6?: string; port?: number };
  remoteEndpoint?: { serviceName?: string; ipv4?: string; ipv6?: string; port?: number };
  tags: Record<string, string>;
  debug?: boolean;
}

export interface ZipkinReporterOptions {
  /** `host:port` of the collector, or a full URL (`http://zipkin:9411/api/v2/spans`). */
  address: string;
  /** Spans per POST (default 100). */
  batchSize?: number;
  /** Longest a span waits before being sent (default 1000 ms). */
  flushIntervalMs?: number;
  /** Spans held while the collector is slow or down; more are dropped (default 1000). */
  maxQueue?: number;
  /** A POST taking longer is abandoned (default 5000 ms). */
  timeoutMs?: number;
  /** Told about failed POSTs (rate-limited by the caller's logger). */
  onError?: (err: Error) => void;
}

export class ZipkinReporter {
  /** The address as configured (compared on reconfiguration). */
  readonly address: string;
  readonly url: URL;
  /** Spans accepted, sent (collector answered 2xx), dropped (queue full or a failed POST). */
  reported = 0;
  sent = 0;
  dropped = 0;
  private queue: ZipkinSpan[] = [];
  private readonly batchSize: number;
  private readonly maxQueue: number;
  private readonly timeoutMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  private readonly agent: Agent;

  constructor(options: ZipkinReporterOptions) {
    this.url = collectorUrl(options.address);
    this.address = options.address;
    this.batchSize = options.batchSize ?? 100;
    this.maxQueue = options.maxQueue ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.onError = options.onError;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    // Spans waiting to be sent never keep the process alive.
    this.timer.unref();
  }

  report(span: ZipkinSpan): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.dropped++;
      return;
    }
    this.reported++;
    this.queue.push(span);
    if (this.queue.length >= this.batchSize && this.inFlight === undefined) void this.flush();
  }

  /** Spans waiting to be sent. */
  get pending(): number {
    return this.queue.length;
  }

  /** Sends what is queued, one batch at a time; resolves when the queue is empty or a POST failed. */
  flush(): Promise<void> {
    if (this.inFlight !== undefined) return this.inFlight;
    if (this.queue.length === 0) return Promise.resolve();
    this.inFlight = (async () => {
      try {
        while (this.queue.length > 0) {
          const batch = this.queue.length <= this.batchSize ? this.queue : this.queue.slice(0, this.batchSize);
          this.queue = this.queue.length <= this.batchSize ? [] : this.queue.slice(this.batchSize);
          try {
            await this.post(batch);
            this.sent += batch.length;
          } catch (err) {
            // The batch is lost: retrying it would grow the queue behind a dead collector.
            this.dropped += batch.length;
            this.onError?.(err as Error);
            return;
          }
        }
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  /** Sends what is queued (bounded by the POST timeout) and stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    this.agent.destroy();
  }

  private post(spans: ZipkinSpan[]): Promise<void> {
    const body = JSON.stringify(spans);
    return new Promise<void>((resolve, reject) => {
      const req = http.request(
        this.url,
        { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: this.timeoutMs },
        (res) => {
          res.resume();
          res.once('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`zipkin collector ${this.url.host} answered ${status}`));
          });
          res.once('error', reject);
        },
      );
      req.once('timeout', () => req.destroy(new Error(`zipkin collector ${this.url.host} did not answer within ${this.timeoutMs} ms`)));
      req.once('error', reject);
      req.end(body);
    });
  }
}

function collectorUrl(address: string): URL {
  if (/^https?:\/\//.test(address)) {
    const url = new URL(address);
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/api/v2/spans';
    return url;
  }
  return new URL(`http://${address}/api/v2/spans`);
}
