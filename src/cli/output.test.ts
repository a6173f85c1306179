// Every command's output arrives whole through a pipe that is read late and slowly: a process that
// exits while the kernel's 64 KiB pipe buffer is full must first wait for it to drain.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, test } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'pillion-output-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Enough mistakes that the error report alone is larger than a pipe's buffer.
const bad = join(dir, 'bad.yaml');
writeFileSync(
  bad,
  `app:\n  port: 8080\n${Array.from({ length: 1500 }, (_, i) => `  unknownKey${i}: 1\n`).join('')}`,
);

let fifoSeq = 0;

/** A named pipe with nobody reading yet: its read end opened without blocking, its write end for the child. */
function fifo(): { read: number; write: number } {
  const path = join(dir, `fifo-${fifoSeq++}`);
  const r = spawnSync('mkfifo', [path]);
  assert.equal(r.status, 0, String(r.stderr));
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY);
  return { read, write };
}

function collect(fd: number): Promise<Buffer> {
  const sock = new Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => resolve(Buffer.concat(chunks)));
    sock.on('error', reject);
  });
}

/**
 * Runs the command with stdout and stderr on pipes that nobody reads until the command has exited
 * or a moment has passed, then reads them. A command that exits with output still queued loses it.
 */
async function throughLatePipes(args: string[]) {
  const out = fifo();
  const err = fifo();
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', out.write, err.write],
    env: { ...process.env, NO_COLOR: '1' },
  });
  closeSync(out.write);
  closeSync(err.write);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Not a wait for a condition: this only keeps the pipes unread while a faulty command would exit.
  await Promise.race([exited, delay(300)]);
  const [stdout, stderr] = await Promise.all([collect(out.read), collect(err.read)]);
  return { code: await exited, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') };
}

let refSeq = 0;

/** The same command with its output going to files, which are written at once. */
async function reference(args: string[]) {
  const outFile = join(dir, `ref-${refSeq}.out`);
  const errFile = join(dir, `ref-${refSeq++}.err`);
  const out = openSync(outFile, 'w');
  const err = openSync(errFile, 'w');
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', out, err],
    env: { ...process.env, NO_COLOR: '1' },
  });
  closeSync(out);
  closeSync(err);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stdout: readFileSync(outFile, 'utf8'), stderr: readFileSync(errFile, 'utf8') };
}

// `big` names the stream that must outgrow a pipe's buffer, so the test can catch a cut.
const commands: { args: string[]; big?: 'stdout' | 'stderr' }[] = [
  { args: ['--help'] },
  { args: ['schema'], big: 'stdout' },
  { args: ['validate', '-c', bad, '--format', 'json'], big: 'stdout' },
  { args: ['run', '-c', bad], big: 'stderr' },
  { args: ['pod', 'list', '--state-dir', join(dir, 'state')] },
  { args: ['inject', '-f', 'pod.yaml'] },
];

for (const { args, big } of commands) {
  test(`regression: \`pillion ${args.join(' ').replace(dir, '<tmp>')}\` writes all its output to a pipe read late`, async () => {
    const [expected, got] = await Promise.all([reference(args), throughLatePipes(args)]);
    if (big) assert.ok(expected[big].length > 65536, `${big} is larger than a pipe buffer`);
    assert.equal(got.code, expected.code);
    assert.equal(got.stdout.length, expected.stdout.length, 'stdout was cut');
    assert.equal(got.stdout, expected.stdout);
    assert.equal(got.stderr.length, expected.stderr.length, 'stderr was cut');
    assert.equal(got.stderr, expected.stderr);
  });
}

test('a reader that goes away early ends the command quietly', () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${cli}" schema | head -c 10 >/dev/null`], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0);
  assert.equal(r.stderr, '');
});
