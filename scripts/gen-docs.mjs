#!/usr/bin/env node
// Regenerates what is generated from one source: docs/config.md (from the config schema),
// docs/errors.md (from the error catalogue) and the demo pod's sidecar ConfigMap (from
// examples/legacy-orders/pillion.yaml). Tests fail when the committed files differ.

import { readFileSync, writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../dist/lib/errors.js';
import { pillionConfigDocs } from '../dist/roles.js';
import { withSidecarConfig } from './demo-config.mjs';

writeFileSync(new URL('../docs/config.md', import.meta.url), await pillionConfigDocs());
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorDocs());
const pod = new URL('../examples/legacy-orders/pod.yaml', import.meta.url);
const sidecar = new URL('../examples/legacy-orders/pillion.yaml', import.meta.url);
writeFileSync(pod, withSidecarConfig(readFileSync(pod, 'utf8'), readFileSync(sidecar, 'utf8')));
console.log(
  'wrote docs/config.md, docs/errors.md and the orders-sidecar ConfigMap in examples/legacy-orders/pod.yaml',
);
