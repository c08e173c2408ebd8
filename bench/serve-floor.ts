/**
 * The serve benchmark's floor (run as a child process by bench/serve.ts): a minimal `node:http`
 * handler for the same V2 request that does what any server of this pipeline must do and nothing
 * else: parse the JSON body, one Redis HMGET of the customer's features (the online store's key
 * and fields), one `session.run` of the same ONNX model on a 1-row float32 block, a JSON answer.
 * No validation, transforms, on-demand features or statuses.
 *
 *   BENCH_PORT, BENCH_MODEL (model.onnx path), BENCH_REDIS_URL, BENCH_KEY_PREFIX (`<prefix>:customer_stats:`)
 */
import http from 'node:http';
import { Redis } from 'ioredis';
import * as ort from 'onnxruntime-node';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

/** The stored fields the model reads (`_ts` is the row's event time). */
export const FLOOR_FIELDS = ['_ts', 'avg_amount_30d', 'txn_count_7d', 'home_lat', 'home_lon'];
/** The fraud-features model's one input: 13 float32 columns. */
export const FLOOR_COLUMNS = 13;

interface V2Body {
  inputs: { name: string; data: unknown[] }[];
}

async function main(): Promise<void> {
  const session = await ort.InferenceSession.create(env('BENCH_MODEL'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const redis = new Redis(env('BENCH_REDIS_URL'));
  const prefix = env('BENCH_KEY_PREFIX');
  const input = session.inputNames[0]!;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as V2Body;
          const col = (name: string) => body.inputs.find((i) => i.name === name)?.data[0];
          const stored = await redis.hmget(`${prefix}${String(col('customer_id'))}`, ...FLOOR_FIELDS);
          const amount = Number(col('amount'));
          const avg = Number(stored[1] ?? NaN);
          const x = new Float32Array(FLOOR_COLUMNS);
          x[0] = Math.log1p(amount);
          x[1] = Number.isFinite(avg) && avg > 0 ? amount / avg : 1;
          x[2] = Math.hypot(Number(col('lat')) - Number(stored[3] ?? 0), Number(col('lon')) - Number(stored[4] ?? 0));
          x[3] = Number(stored[2] ?? 0);
          x[4] = new Date(String(col('event_timestamp'))).getUTCHours();
          const out = await session.run({ [input]: new ort.Tensor('float32', x, [1, FLOOR_COLUMNS]) });
          const label = out[session.outputNames[0]!]!.data as BigInt64Array;
          const text = JSON.stringify({ model_name: 'fraud-features', outputs: [{ name: 'label', datatype: 'INT64', shape: [1], data: [Number(label[0])] }] });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        } catch (err) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: String(err) }));
        }
      })();
    });
  });
  server.listen(Number(env('BENCH_PORT')), '127.0.0.1', () => process.stdout.write('listening\n'));
  process.once('SIGTERM', () => {
    server.close();
    redis.disconnect();
    void session.release();
  });
}

void main();
