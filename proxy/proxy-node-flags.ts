// Node (V8) flags every proxy process starts with: `jibe up` prepends them to
// its sidecars' and gateway's arguments, and the sidecar benchmark to its runner.
//
// A proxy's heap is small and steady (≈6 MB old space once configured) but its
// request path allocates ≈20 KB per request in node:http, so by default V8 grows
// the young generation to 8–16 MB per semi-space under load, and concurrent
// compiler and GC threads keep their malloc arenas. Measured on the sidecar
// benchmark's shape (compiled JS, 1 KiB echo, 16 connections, 2-core AMD EPYC,
// sidecar pinned to one core, Node 24.21), VmRSS:
//
//   flags                                    @1000 rps   at max rps   max rps per core
//   (none)                                   84–86 MB    91–94 MB     ≈ 1.0×
//   --max-semi-space-size=1                  77–80 MB    78–81 MB     ≈ 0.9–1.0×
//   --single-threaded                        73–84 MB    111–115 MB   ≈ 1.0×
//   --max-semi-space-size=2 --single-threaded 73–74 MB   73–74 MB     ≈ 1.0–1.1×
//   --max-semi-space-size=1 --single-threaded 72–73 MB   72–73 MB     ≈ 1.0–1.2×
//
// The chosen pair saves ≈12 MB at 1000 rps and ≈20 MB at max rps (private
// memory, RssAnon: ≈28 → ≈21 MB) at no measurable throughput cost: a 2 MB
// semi-space means ≈13 scavenges/s at 1000 rps (≈0.3 ms each; 1 MB doubles
// that for 1.5 MB less), and --single-threaded runs GC and optimizing compiles
// on the main thread, which a sidecar limited to about one core pays for anyway
// while it saves the helper threads' arenas. No old-space cap: a large mesh's
// config legitimately needs more, and a cap only turns growth into a crash.
//
// --no-maglev (2026-11-22, the real `jibe proxy` fed by a control plane, same
// bench shape, jibe vs jibe-alt side by side in one run): VmRSS at 1000 rps
// 83.3 → 79.9 MB (RssAnon 29.2 → 27.2, RssFile 54.1 → 52.6: neither Maglev's
// code pages in the node binary nor its compiled code are touched) with rps per
// proxy core 19006 → 19738 (same within noise): TurboFan still optimizes the hot
// request path, and Maglev's quicker mid-tier only matters in the first seconds.
// Measured and rejected the same way: --max-semi-space-size=1 (82.4 → 82.9 MB at
// 1000 rps, nothing saved), --optimize-for-size (−2.8 MB but rps per core
// 19438 → 16586, −15 %); --lite-mode / --no-opt / --jitless cost far more.
// About 45–50 MB of any Node proxy's VmRSS is the node binary's own code pages,
// shared by every Node process on the host; no flag changes that.
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--single-threaded', '--no-maglev'];
