/**
 * Prometheus metrics of the model server (`GET /metrics`), in a registry of its own per server.
 *
 *   inferflow_serve_requests_total{route,status}            requests answered
 *   inferflow_serve_request_duration_seconds{route}         latency, arrival to answer
 *   inferflow_serve_rows_per_request{model}                 rows per inference request
 *   inferflow_serve_ranked_lists_total{model}               top-k lists answered (one per entity) by ranking deployments
 *   inferflow_serve_feature_status_total{model,feature,status}  online store statuses of the features served
 *   inferflow_serve_model_info{model,version,sha256}        1 for the version that last answered (or was loaded)
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ResolvedModel } from '../lib/registry/manifest';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'inferflow_serve_requests_total', help: 'Requests answered, by route and HTTP status', labelNames: ['route', 'status'], registers: [this.registry] });
  private readonly latency = new Histogram({
    name: 'inferflow_serve_request_duration_seconds',
    help: 'Time from a request arriving to its answer',
    labelNames: ['route'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly rows = new Histogram({ name: 'inferflow_serve_rows_per_request', help: 'Rows per inference request', labelNames: ['model'], buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000], registers: [this.registry] });
  private readonly statuses = new Counter({ name: 'inferflow_serve_feature_status_total', help: 'Online store status of each feature looked up, per row', labelNames: ['model', 'feature', 'status'], registers: [this.registry] });
  private readonly lists = new Counter({ name: 'inferflow_serve_ranked_lists_total', help: 'Top-k lists answered by ranking deployments, one per entity', labelNames: ['model'], registers: [this.registry] });
  private readonly model = new Gauge({ name: 'inferflow_serve_model_info', help: 'The model version answering under each served name (1)', labelNames: ['model', 'version', 'sha256'], registers: [this.registry] });
  private readonly versions = new Map<string, string>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'inferflow_serve_' });
  }

  request(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.latency.observe({ route }, seconds);
  }

  /** An inference answered by `model` under the served `name`. */
  answered(name: string, model: ResolvedModel, statuses: readonly Record<string, string>[]): void {
    this.loaded(name, model);
    this.rows.observe({ model: name }, statuses.length);
    const counts = new Map<string, number>();
    for (const row of statuses) for (const [feature, status] of Object.entries(row)) counts.set(`${feature}\u0000${status}`, (counts.get(`${feature}\u0000${status}`) ?? 0) + 1);
    for (const [key, n] of counts) {
      const [feature, status] = key.split('\u0000') as [string, string];
      this.statuses.inc({ model: name, feature, status }, n);
    }
  }

  /** A top-k request answered by `model` under the served `name`: `entities` lists (its rows). */
  ranked(name: string, model: ResolvedModel, entities: number): void {
    this.loaded(name, model);
    this.rows.observe({ model: name }, entities);
    this.lists.inc({ model: name }, entities);
  }

  /** The version serving under `name` (the previous one's series is removed). */
  loaded(name: string, model: ResolvedModel): void {
    const key = `${model.version}\u0000${model.sha256}`;
    if (this.versions.get(name) === key) return;
    const before = this.versions.get(name);
    if (before) {
      const [version, sha256] = before.split('\u0000') as [string, string];
      this.model.remove({ model: name, version, sha256 });
    }
    this.versions.set(name, key);
    this.model.set({ model: name, version: String(model.version), sha256: model.sha256 }, 1);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
