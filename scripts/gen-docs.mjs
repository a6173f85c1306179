#!/usr/bin/env node
// Regenerates docs/config.md (from the config schema) and docs/errors.md (from the error
// catalogue). Tests fail when the committed files differ from what this writes.

import { writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../dist/lib/errors.js';
import { pillionConfigDocs } from '../dist/runtime/index.js';

writeFileSync(new URL('../docs/config.md', import.meta.url), pillionConfigDocs());
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorDocs());
console.log('wrote docs/config.md and docs/errors.md');
