/**
 * Open Inference Protocol (KServe V2) REST conformance with the real Triton client
 * (`tritonclient[http]` from PyPI): health, server and model metadata, readiness by version,
 * inference with binary tensor data (the client's default) and with JSON, requested outputs,
 * and the protocol's error answers. test/fixtures/serve/v2_conformance.py makes the calls.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { tritonClientEnv } from '../helpers/env';
import { FEATURES_PIPELINE, REPO_ROOT } from '../../cli/examples';
import { serve, type ServeHandle } from '../../cli/serve';
import { serveFixture, type ServeFixture } from '../helpers/serve-fixture';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'test/fixtures/serve/v2_conformance.py');

let fx: ServeFixture;
let server: ServeHandle;

beforeAll(async () => {
  fx = await serveFixture();
  server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix } });
});

afterAll(async () => {
  await server?.shutdown();
  await fx?.cleanup();
});

interface Err {
  status: string;
  message: string;
}

async function conformance(rows: unknown[], extra: string[] = []): Promise<Record<string, unknown>> {
  const file = path.join(fx.dir, `requests-${Date.now()}.json`);
  await fs.writeFile(file, JSON.stringify(rows));
  const { stdout } = await run('python3', [SCRIPT, new URL(server.url).host, 'fraud-features', file, ...extra], { maxBuffer: 16 * 1024 * 1024, env: tritonClientEnv(inject('tritonPythonPath')) });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('V2 REST conformance with tritonclient', () => {
  it('health, metadata, readiness, inference (binary and JSON), requested outputs and errors as the client expects', async () => {
    const rows = fx.requests.slice(0, 8);
    const o = await conformance(rows);
    expect(o.server_live).toBe(true);
    expect(o.server_ready).toBe(true);
    expect(o.model_ready).toBe(true);
    expect(o.model_ready_version).toBe(true);
    expect(o.model_ready_wrong_version).toBe(false);
    expect(o.model_ready_unknown).toBe(false);
    const sm = o.server_metadata as { name: string; version: string; extensions: string[] };
    expect(sm.name).toBe('inferflow');
    expect(sm.extensions).toContain('binary_tensor_data');
    const mm = o.model_metadata as { name: string; versions: string[]; inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { name: string; datatype: string }[] };
    expect(mm.name).toBe('fraud-features');
    expect(mm.versions).toEqual(['1']);
    const V2 = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];
    for (const t of [...mm.inputs, ...mm.outputs]) expect(V2, `${t.name}: ${t.datatype}`).toContain(t.datatype);
    expect(Object.fromEntries(mm.inputs.map((i) => [i.name, i.datatype]))).toEqual({ customer_id: 'INT64', event_timestamp: 'BYTES', amount: 'FP64', merchant_category: 'BYTES', lat: 'FP64', lon: 'FP64' });
    expect(mm.outputs).toEqual([
      { name: 'label', datatype: 'INT64', shape: [-1] },
      { name: 'score', datatype: 'FP32', shape: [-1] },
    ]);
    expect(o.model_metadata_version).toEqual(o.model_metadata);
    expect((o.metadata_unknown_model as Err).status).toBe('404');
    expect((o.metadata_wrong_version as Err).status).toBe('404');
    expect((o.metadata_wrong_version as Err).message).toContain('version "999" is not served');

    for (const mode of ['binary', 'json'] as const) {
      const r = o[mode] as { response: { id: string; model_name: string; model_version: string; outputs: { name: string; datatype: string; shape: number[]; parameters?: { binary_data_size?: number } }[] }; label: number[]; score: number[] };
      expect(r.response.model_name).toBe('fraud-features');
      expect(r.response.model_version).toBe('1');
      expect(r.response.id).toBe(`${mode === 'binary' ? 'bin' : 'json'}-1`);
      expect(r.response.outputs.map((x) => [x.name, x.datatype, x.shape])).toEqual([
        ['label', 'INT64', [8]],
        ['score', 'FP32', [8]],
      ]);
      expect(r.response.outputs.every((x) => (x.parameters?.binary_data_size !== undefined) === (mode === 'binary'))).toBe(true);
      rows.forEach((row, i) => {
        const want = fx.expected.get(row.transaction_id)!;
        expect(r.label[i]).toBe(want.label);
        expect(Math.abs(r.score[i]! - want.score)).toBeLessThan(1e-6);
      });
    }
    const requested = o.requested as { response: { outputs: { name: string }[] }; score: number[][]; shape: number[]; label: unknown };
    expect(requested.response.outputs.map((x) => x.name)).toEqual(['score']);
    expect(requested.label).toBeNull();
    expect(requested.shape).toEqual([8, 1]);
    expect(requested.score.map((s) => s[0])).toEqual((o.binary as { score: number[] }).score);

    const err = (k: string) => o[k] as Err;
    expect(err('err_unknown_output')).toEqual({ status: '400', message: 'inference request: outputs[0].name: model fraud-features has no output "nope" (outputs: label, score)' });
    expect(err('err_unknown_model').status).toBe('404');
    expect(err('err_unknown_model').message).toBe('model "no-such-model" is not served here (served: fraud-features)');
    expect(err('err_wrong_version')).toEqual({ status: '404', message: 'model fraud-features version "999" is not served here (serving version 1)' });
    expect(err('err_missing_input').status).toBe('400');
    expect(err('err_missing_input').message).toContain('lat is missing from the requests');
    expect(err('err_wrong_datatype').status).toBe('400');
    expect(err('err_wrong_datatype').message).toContain('amount[0]: expected a number (FP64) or null, got "12.5"');
    expect(err('err_binary_nan')).toEqual({ status: '400', message: 'inference request: inputs[3] (amount).data[0]: NaN is not a value (send a missing value as null in JSON)' });
    expect(err('err_shape').status).toBe('400');
    expect(err('err_shape').message).toContain('inputs[3] (amount): 3 rows, the first input has 2');
  });
});
