// GET /api/v1/analyze[?staleAfter=<duration>] → {findings, summary}: the live
// control plane's view analyzed (core/analyze/analyze-mesh.ts). Loopback API
// only, like the other read endpoints `jibe` calls.
import type { ApiRoute } from '../api/api-routes.ts';
import { DURATION_HINT, tryParseDuration } from '../config/duration.ts';
import { JibeError } from '../errors/errors.ts';
import { DEFAULT_STALE_AFTER_MS, analyzeMesh, summarize } from './analyze-mesh.ts';
import type { AnalyzeInput, Finding } from './analyze-mesh.ts';

export interface AnalyzeResponse {
  findings: Finding[];
  summary: { errors: number; warnings: number };
}

/** `input` gathers the live view on each call (everything but the stale limit, which the request may set). */
export function analyzeRoute(input: () => Omit<AnalyzeInput, 'staleAfterMs'>): ApiRoute {
  return {
    method: 'GET',
    pattern: /^\/api\/v1\/analyze$/,
    handler: async (_req, _params, _body, url): Promise<AnalyzeResponse> => {
      const raw = url.searchParams.get('staleAfter');
      const staleAfterMs = raw === null ? DEFAULT_STALE_AFTER_MS : tryParseDuration(raw);
      if (staleAfterMs === undefined || staleAfterMs <= 0) {
        throw new JibeError('JIBE_ERR_BAD_REQUEST', `staleAfter ${JSON.stringify(raw)} is not a positive duration`, { field: 'staleAfter', hint: DURATION_HINT });
      }
      const findings = analyzeMesh({ ...input(), staleAfterMs });
      return { findings, summary: summarize(findings) };
    },
  };
}
