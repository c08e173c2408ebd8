/**
 * MLflow's scoring protocol, as `mlflow models serve` speaks it, so a client moving from MLflow
 * changes only the URL:
 *
 *   POST /invocations   application/json: one of
 *                         {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
 *                         {"dataframe_records": [{...}, ...]}
 *                         {"instances": [{...}, ...]}
 *                         {"inputs": {"col": [...], ...}}  or  {"inputs": [{...}, ...]}
 *                       text/csv: a header row, then one row per request
 *                       → {"predictions": [{"label": 0, "score": 0.1, …}, ...]}: one object per row with every
 *                         output column of the pipeline ([0.5, ...] for a regressor with one target, as MLflow answers);
 *                         a ranking: one row per entity → [{"user_id": 100001, "items": [...], "scores": [...]}, ...]
 *   GET  /ping, /health 200 when the model is loaded
 *
 * Errors answer MLflow's body, {"error_code": "BAD_REQUEST", "message": "…"}. The model answering
 * is the server's `mlflowModel` (`--mlflow-model`), or the only one served.
 */
import type http from 'node:http';
import { InvalidInputError, NotFoundError } from '../lib/errors';
import type { OnlineRequest } from '../lib/pipeline/online';
import { MAX_ROWS_PER_REQUEST } from './v2/tensors';
import { outputRows } from './v2/outputs';
import { columnJson } from '../lib/pipeline/outputs';
import { baseColumns, type Predictions } from '../lib/pipeline/post-process';
import { deploymentOf, inferWithin, type ServerContext } from './context';
import { HttpError, parseJson, readBody } from './respond';
import type { Deployment } from './deployment';
import { lateRanking, mlflowTopK, type ServedRanking } from './v2/ranking';

/** The request formats of the JSON body, exactly one per request. */
export const MLFLOW_FORMATS = ['dataframe_split', 'dataframe_records', 'instances', 'inputs'] as const;

/** MLflow's error codes by HTTP status. */
const ERROR_CODE: Record<number, string> = { 400: 'BAD_REQUEST', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'RESOURCE_DOES_NOT_EXIST', 413: 'BAD_REQUEST', 415: 'BAD_REQUEST', 503: 'TEMPORARILY_UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };

export function mlflowErrorBody(status: number, message: string): { error_code: string; message: string } {
  return { error_code: ERROR_CODE[status] ?? 'INTERNAL_ERROR', message };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function records(field: string, v: unknown): OnlineRequest[] {
  if (!Array.isArray(v) || !v.every(isObject)) throw new InvalidInputError(`${field}: a list of records ({"field": value, …} per row)`, [], { field });
  return v;
}

/** A JSON body in one of MLFLOW_FORMATS → request rows. */
export function rowsOfJson(body: unknown): OnlineRequest[] {
  if (!isObject(body)) throw new InvalidInputError(`the body must be a JSON object with one of ${MLFLOW_FORMATS.join(', ')}`);
  const given = MLFLOW_FORMATS.filter((f) => f in body);
  if (given.length !== 1) throw new InvalidInputError(`the body must have exactly one of ${MLFLOW_FORMATS.join(', ')} (got ${given.length === 0 ? `${Object.keys(body).join(', ') || 'none'}` : given.join(', ')})`);
  const format = given[0]!;
  const v = body[format];
  if (format === 'dataframe_split') {
    if (!isObject(v) || !Array.isArray(v.columns) || !v.columns.every((c) => typeof c === 'string') || !Array.isArray(v.data)) throw new InvalidInputError('dataframe_split: {"columns": [names], "data": [[row values], …]}', [], { field: format });
    const columns = v.columns;
    const problems = (v.data as unknown[]).flatMap((row, i) => (Array.isArray(row) && row.length === columns.length ? [] : [`dataframe_split.data[${i}]: a list of ${columns.length} values (one per column)`]));
    if (problems.length > 0) throw new InvalidInputError('dataframe_split does not fit its columns', problems.slice(0, 5));
    return (v.data as unknown[][]).map((row) => Object.fromEntries(columns.map((c, k) => [c, row[k]])));
  }
  if (format === 'inputs' && isObject(v)) {
    const cols = Object.entries(v);
    const n = cols.length === 0 ? 0 : Array.isArray(cols[0]![1]) ? cols[0]![1].length : -1;
    const bad = cols.filter(([, c]) => !Array.isArray(c) || c.length !== n).map(([k]) => k);
    if (n < 0 || bad.length > 0) throw new InvalidInputError(`inputs: every column a list of the same length (${bad.join(', ') || cols[0]![0]} is not)`, [], { field: format });
    return Array.from({ length: n }, (_, r) => Object.fromEntries(cols.map(([k, c]) => [k, (c as unknown[])[r]])));
  }
  return records(format, v);
}

/** RFC 4180 CSV (header row first) → request rows; cells that are numbers become numbers, empty cells null. */
export function rowsOfCsv(text: string): OnlineRequest[] {
  const table: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let wasQuoted = false;
  const endCell = () => {
    row.push(wasQuoted ? `"${cell}` : cell);
    cell = '';
    wasQuoted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === '') {
      quoted = true;
      wasQuoted = true;
    } else if (ch === ',') endCell();
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endCell();
      if (row.some((c) => c !== '')) table.push(row);
      row = [];
    } else cell += ch;
  }
  if (quoted) throw new InvalidInputError('text/csv: a quoted cell is not closed');
  endCell();
  if (row.some((c) => c !== '')) table.push(row);
  const [header, ...body] = table;
  if (!header) throw new InvalidInputError('text/csv: a header row naming the columns is required');
  const bad = body.findIndex((r) => r.length !== header.length);
  if (bad >= 0) throw new InvalidInputError(`text/csv: row ${bad + 1} has ${body[bad]!.length} cells, the header has ${header.length}`);
  const value = (c: string): unknown => {
    if (c.startsWith('"')) return c.slice(1); // quoted: always text
    if (c === '') return null;
    const n = Number(c);
    return Number.isFinite(n) && /^[-+]?(\d|\.\d)/.test(c) ? n : c;
  };
  const names = header.map((h) => (h.startsWith('"') ? h.slice(1) : h));
  return body.map((r) => Object.fromEntries(names.map((h, k) => [h, value(r[k]!)])));
}

/** The deployment /invocations answers with. */
export function mlflowDeployment(ctx: ServerContext): Deployment {
  if (ctx.mlflowModel !== undefined) return deploymentOf(ctx, ctx.mlflowModel);
  if (ctx.deployments.size === 1) return [...ctx.deployments.values()][0]!;
  throw new NotFoundError(`/invocations answers with one model and ${ctx.deployments.size} are served (${[...ctx.deployments.keys()].join(', ')}): start the server with --mlflow-model NAME`);
}

export interface MlflowRoute {
  label: string;
  run(req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void>;
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function matchMlflow(ctx: ServerContext, method: string, path: string): MlflowRoute | undefined {
  if (method === 'GET' && (path === '/ping' || path === '/health')) {
    return {
      label: 'mlflow_ping',
      run: (_req, res) => {
        const ready = [...ctx.deployments.values()].every((d) => d.ready);
        sendText(res, ready ? 200 : 503, ready ? '\n' : 'not ready\n');
      },
    };
  }
  if (method === 'POST' && path === '/invocations') return { label: 'mlflow_invocations', run: (req, res) => invocations(ctx, req, res) };
  return undefined;
}

async function invocations(ctx: ServerContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const d = mlflowDeployment(ctx);
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && type !== 'text/csv') throw new HttpError(415, `content type ${type} is not supported: send application/json or text/csv`);
  const text = (await readBody(req, ctx.limits.maxBodyBytes)).toString('utf8');
  const rows = type === 'text/csv' ? rowsOfCsv(text) : rowsOfJson(parseJson(text));
  if (rows.length > MAX_ROWS_PER_REQUEST) throw new InvalidInputError(`at most ${MAX_ROWS_PER_REQUEST} rows per request (got ${rows.length})`);
  const ranking = ctx.rankings?.get(d.name);
  const predictions = ranking ? await rankedRows(ctx, d, ranking, rows) : mlflowPredictions((await inferWithin(ctx, d, { requests: rows })).predictions);
  const body = JSON.stringify({ predictions });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A ranking's MLflow answer (one list per row) within the server's deadline, counted in the metrics like every inference. */
async function rankedRows(ctx: ServerContext, d: Deployment, ranking: ServedRanking, rows: readonly Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  const ms = ctx.limits.deadlineMs;
  const { model, predictions } = await mlflowTopK(d, ranking, rows, ms, () => lateRanking(d.name, ms));
  if (rows.length > 0) ctx.metrics.ranked(d.name, model, rows.length);
  return predictions;
}

/** The `predictions` of an answer: a value per row when the only output is one number per row, else one object per row with every output column. */
function mlflowPredictions(p: Predictions): unknown[] {
  const columns = baseColumns(p);
  const only = columns.size === 1 ? [...columns.values()][0]! : undefined;
  return only && !('width' in only) ? columnJson(only) : outputRows(p);
}
