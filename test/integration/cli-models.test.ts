import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT_CODES } from '../../cli/exit-codes';
import { EXAMPLE_MODEL_DIR, REPO_ROOT, tempConfig } from '../helpers/env';

const run = promisify(execFile);
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => ({ dir, cleanup } = await tempConfig()));
afterAll(() => cleanup());

describe('inferflow models (CLI) against an S3 registry', () => {
  it('registers, lists, shows, moves aliases and pulls into the cache', async () => {
    const registry = `s3://${inject('s3').bucket}/cli-${randomUUID().slice(0, 8)}`;
    const env = { ...process.env, INFERFLOW_DATA_DIR: dir, INFERFLOW_REGISTRY: registry };
    const cli = async (...args: string[]) => (await run(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'models', ...args], { env, cwd: REPO_ROOT })).stdout;
    const model = path.join(EXAMPLE_MODEL_DIR, 'model.onnx');
    const metadata = path.join(EXAMPLE_MODEL_DIR, 'metadata.json');

    expect(await cli('register', model, '--name', 'fraud', '--metadata', metadata, '--alias', 'production')).toMatch(/registered fraud:1 sha256 [0-9a-f]{64} \(alias production\)/);
    expect(await cli('register', model, '--name', 'fraud', '--metadata', metadata)).toContain('registered fraud:2');
    expect(await cli('list')).toMatch(/fraud\s+1, 2\s+production→1/);
    const manifest = JSON.parse(await cli('show', 'fraud@production', '--json')) as { version: number; signature: { inputs: { name: string }[] } };
    expect(manifest.version).toBe(1);
    expect(manifest.signature.inputs[0]!.name).toBe('features');
    expect(await cli('alias', 'fraud', 'production', '2')).toContain('fraud@production → 2');
    expect(await cli('pull', 'fraud@production')).toContain('fraud:2 downloaded to');
    expect(await cli('pull', 'fraud:1')).toContain('already cached at'); // same bytes, same sha256

    const err = await cli('show', 'fraud@nope').then(() => undefined, (e: { stderr: string; code: number }) => e);
    expect(err?.code).toBe(EXIT_CODES.notFound);
    expect(err?.stderr).toContain('NotFound: model fraud has no alias nope');
    const noMetadata = await cli('register', model, '--name', 'fraud').then(() => undefined, (e: { stderr: string; code: number }) => e);
    expect(noMetadata?.code).toBe(EXIT_CODES.badInput);
    expect(noMetadata?.stderr).toContain("required option '--metadata <file>' not specified");
    const bad = await cli('register', path.join(dir, 'missing.onnx'), '--name', '../evil', '--metadata', metadata).then(() => undefined, (e: { stderr: string; code: number }) => e);
    expect(bad?.code).toBe(EXIT_CODES.badInput);
    expect(bad?.stderr).toContain('InvalidInput');
  });
});
