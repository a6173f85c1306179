// Folding Istio's security resources into pillion.yaml's own keys: the files that policies.istio
// (or `pillion run --istio`) names are read, translated into inbound.jwt, inbound.authorization
// and inbound.mtls, and the result is validated once more, so the proxy runs one model. Loaded
// by the config loader only when a config names such files.

import { resolve } from 'node:path';
import type { z } from 'zod';
import { compareIssues, type ConfigIssue, type LoadResult } from '../config/index.js';
import { type ConfigExtras, istioResources, type PillionConfig } from '../runtime/config-schema.js';

export async function withIstio(
  loaded: LoadResult<PillionConfig>,
  file: string | undefined,
  extras: ConfigExtras,
  schemaFor: (sections: readonly string[]) => Promise<z.ZodType>,
): Promise<LoadResult<PillionConfig>> {
  if (!loaded.ok) return loaded;
  const { config, raw } = loaded;
  const cli = extras.istio ?? [];
  if ((config.policies?.istio.length ?? 0) === 0 && cli.length === 0) return loaded;
  const here = (message: string, code: ConfigIssue['code'] = 'PILLION_ERR_CONFIG_BAD_VALUE'): ConfigIssue => {
    const pos = positionIn(loaded.text, 'policies');
    return { file: file ?? '(command line)', ...pos, code, path: 'policies', message };
  };
  const { loadIstioFiles, baseOf } = await import('../policies/istio.js');
  // Hosts of traffic resources name upstreams: the outbound's, then the inbound's.
  const upstreams: Record<string, { ports: number[] }> = {};
  for (const section of [config.inbound, config.outbound])
    for (const [name, u] of Object.entries(section?.upstreams ?? {}))
      upstreams[name] = { ports: u.endpoints.map((e) => e.port) };
  const p = config.policies;
  const r = await loadIstioFiles(
    [...(p?.istio ?? []).map((f) => resolve(baseOf(file), f)), ...cli.map((f) => resolve(f))],
    baseOf(file),
    {
      workloadLabels: p?.workloadLabels ?? {},
      namespace: p?.namespace,
      rootNamespace: p?.rootNamespace ?? 'istio-system',
      providers: Object.keys(config.inbound?.authorization?.providers ?? {}),
      upstreams,
    },
  );
  if (!r.ok) return { ok: false, issues: r.issues.sort(compareIssues), text: loaded.text };
  const t = r.translation;
  // Security resources are the inbound proxy's, applied to this workload or not.
  const security = t.resources.some((x) => x.kind !== 'VirtualService' && x.kind !== 'DestinationRule');
  if (security && !config.inbound)
    return {
      ok: false,
      issues: [
        here(
          'Istio security policies apply to the inbound proxy; add an inbound section (listeners in front of the app)',
        ),
      ],
      text: loaded.text,
    };
  if (t.routes.length > 0 && !config.outbound)
    return {
      ok: false,
      issues: [here("a VirtualService's routes are the outbound proxy's; add an outbound section")],
      text: loaded.text,
    };
  type Section = Record<string, unknown> & { issuers?: unknown[]; policies?: unknown[] };
  const inbound = structuredClone(raw.inbound ?? {}) as Record<string, unknown>;
  const extend = (key: 'jwt' | 'authorization', list: 'issuers' | 'policies', items: unknown[]) => {
    if (items.length === 0) return;
    const section = (inbound[key] ?? {}) as Section;
    inbound[key] = { ...section, [list]: [...(section[list] ?? []), ...items] };
  };
  extend('jwt', 'issuers', t.jwtIssuers);
  extend('authorization', 'policies', t.policies);
  if (t.mtls) {
    if (inbound.mtls !== undefined)
      return {
        ok: false,
        issues: [here('inbound.mtls is set both in pillion.yaml and by a PeerAuthentication')],
        text: loaded.text,
      };
    inbound.mtls = t.mtls.value;
  }
  const merged: Record<string, unknown> = {
    ...raw,
    ...(raw.inbound !== undefined || security ? { inbound } : {}),
  };
  // DestinationRules onto their upstreams (in every section that has one of that name), and
  // VirtualService routes after pillion.yaml's own outbound routes.
  if (t.upstreams.length > 0 || t.routes.length > 0) {
    const conflicts: ConfigIssue[] = [];
    for (const key of ['inbound', 'outbound'] as const) {
      const section = merged[key] as { upstreams?: Record<string, Record<string, unknown>> } | undefined;
      if (section?.upstreams === undefined) continue;
      const copy = structuredClone(section) as {
        upstreams: Record<string, Record<string, unknown>>;
      } & Record<string, unknown>;
      for (const d of t.upstreams) {
        const u = copy.upstreams[d.upstream];
        if (u === undefined) continue;
        for (const [k, v] of Object.entries(d.patch)) {
          if (k === 'pool' && typeof u.pool === 'object' && u.pool !== null) {
            const pool = u.pool as Record<string, unknown>;
            for (const pk of Object.keys(v as object))
              if (pk in pool)
                conflicts.push({
                  ...d.at,
                  message: `${key}.upstreams.${d.upstream}.pool.${pk} is set both in pillion.yaml and by this DestinationRule`,
                });
            u.pool = { ...pool, ...(v as object) };
          } else if (u[k] !== undefined) {
            conflicts.push({
              ...d.at,
              message: `${key}.upstreams.${d.upstream}.${k} is set both in pillion.yaml and by this DestinationRule`,
            });
          } else u[k] = v;
        }
      }
      if (key === 'outbound' && t.routes.length > 0)
        copy.routes = [...((copy.routes as unknown[]) ?? []), ...t.routes];
      merged[key] = copy;
    }
    if (conflicts.length > 0) return { ok: false, issues: conflicts, text: loaded.text };
  }
  const again = (await schemaFor(Object.keys(merged))).safeParse(merged, { jitless: true });
  if (!again.success)
    return {
      ok: false,
      issues: again.error.issues.map((i) =>
        here(`after adding the Istio resources: ${i.path.join('.')}: ${i.message}`),
      ),
      text: loaded.text,
    };
  const config2 = again.data as PillionConfig;
  istioResources.set(config2, t.resources);
  return { ok: true, config: config2, raw: merged, text: loaded.text };
}

function positionIn(text: string, key: string): { line: number; col: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${key}:`));
  return i === -1 ? { line: 1, col: 1 } : { line: i + 1, col: 1 };
}
