// Where access log lines go by default: stdout, in batches. Lines collect in a
// 64 KiB buffer that is written when full and by a 1 s timer, so a busy proxy
// makes one write per ~100 lines.
//
// The batches go through process.stdout, not fs.write: for a pipe or socket
// (a container's stdout) Node's stdout is a libuv stream on a non-blocking fd,
// so a write is one write(2) on the event loop and whatever the pipe cannot
// take waits in the stream's queue. fs.write (sonic-boom's asynchronous mode)
// sends every write through libuv's thread pool instead: on a sidecar held to
// one core that hop cost more than formatting the lines (telemetry-overhead
// benchmark: -11.8 % → -5.7 % max throughput with the JSON log on).
//
// A reader that stops reading (a stuck log collector) must not cost the proxy
// its memory or its traffic: past ACCESS_LOG_MAX_PENDING_BYTES waiting, whole
// batches are dropped and counted, and once the reader catches up one line
// says how many were lost.
import type { Writable } from 'node:stream';

/** A quiet proxy would hold its last lines forever: a timer writes what is pending, as Envoy's access log flush interval (1 s) does. */
export const ACCESS_LOG_FLUSH_MS = 1000;
/** A batch this large is written at once. */
export const ACCESS_LOG_BATCH_BYTES = 64 * 1024;
/** Bytes written but not yet taken by the reader beyond which batches are dropped. */
export const ACCESS_LOG_MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** What the output is told about lines it lost (it writes one line about them, in the log's own format). */
export type DroppedLinesLine = (dropped: number, nowMs: number) => string;

export interface AccessLogBatchOptions {
  /** Default process.stdout. */
  output?: Writable;
  /** Default ACCESS_LOG_MAX_PENDING_BYTES. */
  maxPendingBytes?: number;
  droppedLine: DroppedLinesLine;
  /** Called first by every flush (the timer's too): lines held elsewhere go into the batch. */
  beforeFlush?: () => void;
}

export class AccessLogBatch {
  private readonly output: Writable;
  private readonly maxPendingBytes: number;
  private readonly droppedLine: DroppedLinesLine;
  private readonly beforeFlush: (() => void) | undefined;
  private batch = Buffer.allocUnsafe(ACCESS_LOG_BATCH_BYTES);
  private used = 0;
  /** Lines in the current batch (counted as dropped if it is). */
  private lines = 0;
  private dropped = 0;
  private waitingForDrain = false;
  private readonly timer: NodeJS.Timeout;
  /** Whether a batch the output took at once may be filled again (process.stdout). */
  private readonly reuse: boolean;

  constructor(options: AccessLogBatchOptions) {
    this.output = options.output ?? process.stdout;
    this.reuse = this.output === process.stdout;
    this.maxPendingBytes = options.maxPendingBytes ?? ACCESS_LOG_MAX_PENDING_BYTES;
    this.droppedLine = options.droppedLine;
    this.beforeFlush = options.beforeFlush;
    this.timer = setInterval(() => this.flush(), ACCESS_LOG_FLUSH_MS);
    this.timer.unref();
    // A write error (EPIPE: the reader went away) destroys the stream; unhandled it would end the proxy.
    if (!this.output.listeners('error').includes(ignoreWriteError)) this.output.on('error', ignoreWriteError);
  }

  /** Lines lost to a reader that did not keep up, since the proxy started. */
  get droppedLines(): number {
    return this.dropped;
  }

  add(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (!this.reserve(line.length * 3)) {
      this.send(Buffer.from(line), 1);
      return;
    }
    this.commit(this.used + this.batch.write(line, this.used));
  }

  /**
   * Room for a line of at most `bytes` at `offset` in `buffer` (the batch is
   * sent first when it lacks the room); false when no batch holds that many.
   * The line is written there and then `commit`ted.
   */
  reserve(bytes: number): boolean {
    if (this.used + bytes <= ACCESS_LOG_BATCH_BYTES) return true;
    this.flush();
    return bytes <= ACCESS_LOG_BATCH_BYTES;
  }

  get buffer(): Buffer {
    return this.batch;
  }

  get offset(): number {
    return this.used;
  }

  /** A line was written into `buffer` from `offset` up to `end`. */
  commit(end: number): void {
    this.used = end;
    this.lines++;
  }

  flush(): void {
    this.beforeFlush?.();
    if (this.used === 0) return;
    const chunk = this.batch.subarray(0, this.used);
    const lines = this.lines;
    this.used = 0;
    this.lines = 0;
    // Nearly always stdout takes the whole batch in the write call itself: the pipe (or file) copied it and nothing
    // is left pending. Then the same buffer is filled again, and stays in the CPU's cache instead of a new 64 KiB
    // passing through it each time. A batch the stream still holds is left to it, and the next one is new. (Only
    // stdout: another Writable may keep a chunk it has already called back for.)
    const handedOver = this.send(chunk, lines);
    if (handedOver && !(this.reuse && this.output.writableLength === 0)) this.batch = Buffer.allocUnsafe(ACCESS_LOG_BATCH_BYTES);
  }

  /** Writes what is pending and stops the timer (the stream writes it out before the process exits). */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }

  /** True when the chunk was handed to the stream (false: dropped). */
  private send(chunk: Buffer, lines: number): boolean {
    if (this.output.destroyed) {
      // stdout closed (EPIPE): nobody reads the log any more; traffic goes on.
      this.dropped += lines;
      return false;
    }
    if (this.output.writableLength + chunk.length > this.maxPendingBytes) {
      const before = this.dropped;
      this.dropped += lines;
      if (!this.waitingForDrain) {
        this.waitingForDrain = true;
        this.output.once('drain', () => {
          this.waitingForDrain = false;
          // One line per stall, with how many lines it cost.
          this.output.write(this.droppedLine(this.dropped - before, Date.now()));
        });
      }
      return false;
    }
    this.output.write(chunk);
    return true;
  }
}

/** Kept on the output for good (one per stream, however often the log is reconfigured): after an error, lines are counted as dropped. */
function ignoreWriteError(): void {}
