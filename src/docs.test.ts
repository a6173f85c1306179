// The documentation is checked like code: every YAML example in README.md and docs/*.md is
// validated, and the front page (README opening, package.json, `pillion --help`) claims only what
// is built.
//
// YAML examples: a ```yaml block is validated as a pillion.yaml; a block whose documents all have
// `apiVersion` and `kind` as a pod manifest (`pillion pod up`). The info string can say so
// explicitly: ```yaml pillion, ```yaml pod, ```yaml istio (Istio security resources, checked as
// `policies.istio` reads them), ```yaml injector (the injector's settings, as `pillion webhook
// --config` reads them), ```yaml inject (manifests `pillion inject` must inject without an error),
// or ```yaml skip for YAML that is none of these (a fragment of a larger file). Examples are checked against the schema and the
// manifest loader only: the files they name need not exist here.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkIstioText } from './policies/istio.js';
import { parseAllDocuments } from 'yaml';
import { formatIssue, parseConfigText } from './config/index.js';
import { ANNOTATIONS, defaultInjectorConfig, injectManifests, injectorSchema } from './inject/index.js';
import { parseManifest } from './pod/index.js';
import { PLANNED_ROLES, parsePillionConfig } from './roles.js';

const root = new URL('../', import.meta.url).pathname;

interface Example {
  file: string;
  /** Line of the first YAML line in the Markdown file. */
  line: number;
  kind: string;
  text: string;
}

/** Fenced ```yaml blocks of a Markdown file, with their line numbers. */
function yamlExamples(file: string, markdown: string): Example[] {
  const out: Example[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(ya?ml)\b\s*(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, , kind] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence!); j++)
      body.push(lines[j]!.slice(indent!.length));
    out.push({ file, line: i + 2, kind: kind ?? '', text: `${body.join('\n')}\n` });
    i = j;
  }
  return out;
}

function looksLikeManifest(text: string): boolean {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs) || docs.length === 0) return false;
  return docs.every((d) => {
    const js = d.toJS() as Record<string, unknown> | null;
    return js !== null && typeof js === 'object' && 'apiVersion' in js && 'kind' in js;
  });
}

function documentationFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f));
  return ['README.md', ...docs];
}

/** Positions inside the example, shifted to the Markdown file's lines. */
function where(ex: Example, issues: { line: number; col: number }[], render: (i: number) => string): string {
  return issues.map((i, n) => `${ex.file}:${ex.line + i.line - 1}:${i.col} ${render(n)}`).join('\n');
}

test('every YAML example in README.md and docs/*.md is valid', async () => {
  const examples = documentationFiles().flatMap((f) => yamlExamples(f, readFileSync(join(root, f), 'utf8')));
  assert.ok(examples.length >= 4, 'the examples were found');
  const failures: string[] = [];
  for (const ex of examples) {
    const kind = ex.kind || (looksLikeManifest(ex.text) ? 'pod' : 'pillion');
    if (kind === 'skip') continue;
    if (kind === 'pod') {
      const r = parseManifest(ex.text, `${ex.file}:${ex.line}`);
      if (!r.ok) failures.push(where(ex, r.errors, (n) => formatIssue(r.errors[n]!).replace(/^\S+ /, '')));
    } else if (kind === 'istio') {
      const issues = checkIstioText(ex.text, `${ex.file}:${ex.line}`);
      if (issues.length > 0)
        failures.push(where(ex, issues, (n) => formatIssue(issues[n]!).replace(/^\S+ /, '')));
    } else if (kind === 'pillion') {
      // Variables the examples leave to the reader's environment have defaults, or are named here:
      // a sidecar that signals a container of its pod runs in one (the pod runner sets the variable).
      const r = await parsePillionConfig(ex.text, `${ex.file}:${ex.line}`, {
        PILLION_POD_DIR: '/var/lib/pillion/run/default_orders_0',
      });
      if (!r.ok) failures.push(where(ex, r.issues, (n) => formatIssue(r.issues[n]!).replace(/^\S+ /, '')));
    } else if (kind === 'injector') {
      const r = parseConfigText(ex.text, `${ex.file}:${ex.line}`, { schema: injectorSchema, env: {} });
      if (!r.ok) failures.push(where(ex, r.issues, (n) => formatIssue(r.issues[n]!).replace(/^\S+ /, '')));
    } else if (kind === 'inject') {
      const r = await injectManifests(ex.text, `${ex.file}:${ex.line}`, { config: defaultInjectorConfig() });
      if (!r.ok) failures.push(where(ex, r.errors, (n) => formatIssue(r.errors[n]!).replace(/^\S+ /, '')));
    } else {
      failures.push(
        `${ex.file}:${ex.line}: unknown marker "yaml ${kind}" (use pillion, pod, istio, injector, inject or skip)`,
      );
    }
  }
  assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
});

test('the example extractor finds blocks, their lines and their markers', () => {
  const md = 'text\n\n```yaml\na: 1\n```\n\n  ```yaml pod\n  kind: Pod\n  ```\n```yml skip\nx\n```\n';
  assert.deepEqual(yamlExamples('x.md', md), [
    { file: 'x.md', line: 4, kind: '', text: 'a: 1\n' },
    { file: 'x.md', line: 8, kind: 'pod', text: 'kind: Pod\n' },
    { file: 'x.md', line: 11, kind: 'skip', text: 'x\n' },
  ]);
});

// --- the front page ------------------------------------------------------------------------------

/** Words that name a planned feature; a sentence using one must say it is planned. */
const PLANNED_WORDS = /\b(metrics export\w*)\b/i;

function unhonestSentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+/)
    .filter((s) => PLANNED_WORDS.test(s) && !/planned|not built|coming/i.test(s));
}

test('the front page claims only what is built: README opening, package.json, pillion --help', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const opening = readme.slice(readme.indexOf('\n\n'), readme.indexOf('```'));
  assert.deepEqual(unhonestSentences(opening), [], 'README opening');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { description: string };
  assert.deepEqual(unhonestSentences(pkg.description), [], 'package.json description');
  const help = spawnSync(process.execPath, [join(root, 'dist/cli/main.js'), '--help'], { encoding: 'utf8' });
  const description = help.stdout.slice(help.stdout.indexOf('\n\n'), help.stdout.indexOf('Options:'));
  assert.deepEqual(unhonestSentences(description), [], 'pillion --help');
  for (const role of PLANNED_ROLES) assert.ok(help.stdout.includes(role.what), `--help names ${role.what}`);
});

test('the README says what is coming, and names every planned section and command', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('### What is coming');
  assert.ok(start > 0, 'a "What is coming" section');
  const coming = readme.slice(start, readme.indexOf('\n## ', start));
  for (const role of PLANNED_ROLES) {
    for (const section of role.sections) assert.ok(coming.includes(`\`${section}:\``), section);
    for (const cmd of role.commands) assert.ok(coming.includes(`\`pillion ${cmd}`), `pillion ${cmd}`);
  }
});

test('a planned command answers that it is not built yet, in one line', () => {
  const planned = PLANNED_ROLES.flatMap((r) => r.commands);
  // Every planned command is handled by the same loop; two of them stand for all.
  for (const cmd of planned.slice(0, 2)) {
    const r = spawnSync(process.execPath, [join(root, 'dist/cli/main.js'), cmd, '--some-flag'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, cmd);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      new RegExp(`^pillion ${cmd}: PILLION_ERR_CLI_NOT_BUILT_YET: planned but not built yet: .+\\n$`),
    );
  }
});

test('docs/kubernetes.md has every annotation pillion reads in its table', () => {
  const doc = readFileSync(join(root, 'docs', 'kubernetes.md'), 'utf8');
  const table = doc.slice(doc.indexOf('| annotation |'));
  for (const key of Object.values(ANNOTATIONS))
    assert.ok(table.includes(`| \`${key}\``), `${key} is not in the table`);
});
