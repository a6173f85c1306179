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
  if (!config.inbound)
    return {
      ok: false,
      issues: [
        here(
          'Istio policies apply to the inbound proxy; add an inbound section (listeners in front of the app)',
        ),
      ],
      text: loaded.text,
    };
  const { loadIstioFiles, baseOf } = await import('../policies/istio.js');
  const p = config.policies;
  const r = await loadIstioFiles(
    [...(p?.istio ?? []).map((f) => resolve(baseOf(file), f)), ...cli.map((f) => resolve(f))],
    baseOf(file),
    {
      workloadLabels: p?.workloadLabels ?? {},
      namespace: p?.namespace,
      rootNamespace: p?.rootNamespace ?? 'istio-system',
      providers: Object.keys(config.inbound.authorization?.providers ?? {}),
    },
  );
  if (!r.ok) return { ok: false, issues: r.issues.sort(compareIssues), text: loaded.text };
  const t = r.translation;
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
  const merged = { ...raw, inbound };
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
