/**
 * `inferflow stream run|status|pause|resume <spec>`: the bridge of a stream pipeline (bus →
 * signal-with-start onto N streamingInference workflows) and the partitions' controls.
 */
import type { Command } from 'commander';
import type { StreamPipelineSpec, StreamStats } from '../lib/messages/stream';
import { examples, printJson, withTemporal } from './options';

const SPEC_EXAMPLE = `{
  "name": "fraud-stream",
  "source": {"type": "nats", "stream": "TXNS", "subject": "txns.new"},
  "key": "customer_id", "idField": "transaction_id", "partitions": 4,
  "batch": {"size": 100, "maxDelayMs": 200},
  "model": "fraud-detector@production",
  "sink": {"type": "postgres", "table": "fraud_scores"},
  "deadLetter": {"type": "nats", "subject": "txns.dead"}
}`;

async function specAndIds(file: string): Promise<{ spec: StreamPipelineSpec; ids: string[] }> {
  const { loadStreamSpec, partitionsOf } = await import('../lib/streams/spec.js');
  const { partitionWorkflowId } = await import('../lib/messages/stream.js');
  const spec = await loadStreamSpec(file);
  return { spec, ids: Array.from({ length: partitionsOf(spec) }, (_, p) => partitionWorkflowId(spec.name, p)) };
}

interface PartitionStatus extends Partial<StreamStats> {
  workflowId: string;
  state: string;
}

export function registerStreamCommands(program: Command): void {
  const stream = program.command('stream').description('Streaming inference: events from NATS JetStream or Redis Streams → N streamingInference workflows → predictions in a record sink (docs/streaming.md).');

  stream
    .command('run <spec>')
    .description('Run the bridge of a stream pipeline until SIGINT/SIGTERM: pull events, dead-letter bad ones, signal-with-start the partitions, acknowledge after Temporal holds the signals.')
    .addHelpText('after', examples(`
      inferflow stream run examples/pipelines/fraud-stream.json
      INFERFLOW_NATS_URL=nats://10.0.0.5:4222 inferflow stream run fraud-stream.json
    `) + `\nA spec:\n${SPEC_EXAMPLE}\nWorkers (inferflow worker) run the partitions; the bridge only moves events. Stop it with Ctrl-C: the batch in hand is finished or left unacknowledged, never lost.\n`)
    .action(async (file: string) => {
      const { spec } = await specAndIds(file);
      const { createLogger } = await import('../lib/log.js');
      const { StreamBridge, createDeadLetterSink, openStreamSource, partitionsOf } = await import('../lib/streams/index.js');
      await withTemporal(async (client, config) => {
        const logger = createLogger(config.logLevel, 'inferflow-stream');
        const { closeNatsConnections, closeRedisClients, closePostgresPools, sinkDefaultsFrom } = await import('../lib/sinks/index.js');
        const source = await openStreamSource(spec, config);
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          const bridge = new StreamBridge({
            client,
            taskQueue: config.temporal.taskQueue,
            spec,
            source,
            deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(config)),
            logger,
          });
          logger.info(`bridging ${source.description} → ${partitionsOf(spec)} partitions of ${spec.name} on task queue ${config.temporal.taskQueue}`);
          const stats = await bridge.run(stop.signal);
          console.log(JSON.stringify({ stopped: spec.name, ...stats }));
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          await source.close();
          await Promise.allSettled([closeNatsConnections(), closeRedisClients(), closePostgresPools()]);
        }
      });
    });

  stream
    .command('status <spec>')
    .description("Each partition's workflow state and stats (events in, predictions out, dead letters, buffered, lag, last flush, model version).")
    .option('--json', 'one JSON document')
    .addHelpText('after', examples(`
      inferflow stream status examples/pipelines/fraud-stream.json
      inferflow stream status fraud-stream.json --json | jq '.[] | .predictionsOut'
    `))
    .action(async (file: string, opts: { json?: boolean }) => {
      const { ids } = await specAndIds(file);
      await withTemporal(async (client) => {
        const rows: PartitionStatus[] = await Promise.all(
          ids.map(async (workflowId) => {
            const h = client.workflow.getHandle(workflowId);
            try {
              const d = await h.describe();
              if (d.status.name !== 'RUNNING') return { workflowId, state: d.status.name.toLowerCase() };
              return { workflowId, state: 'running', ...(await h.query<StreamStats>('stats')) };
            } catch (err) {
              if ((err as Error).name === 'WorkflowNotFoundError') return { workflowId, state: 'not started' };
              throw err;
            }
          }),
        );
        if (opts.json) return printJson(rows);
        const { table } = await import('../lib/util/format.js');
        const cols = ['partition', 'state', 'events in', 'predictions', 'dead letters', 'buffered', 'lag ms', 'last flush', 'model', 'runs'];
        console.log(
          table(
            rows.map((r) => [r.workflowId, r.paused ? 'paused' : r.state, String(r.eventsIn ?? ''), String(r.predictionsOut ?? ''), String(r.deadLetters ?? ''), String(r.buffered ?? ''), String(r.lagMs ?? ''), r.lastFlush ?? '', r.model ? `${r.model.name}:${r.model.version}` : '', String(r.runs ?? '')]),
            cols,
          ),
        );
        for (const r of rows) if (r.lastError) console.log(`${r.workflowId}: ${r.lastError}`);
      });
    });

  for (const [name, what] of [
    ['pause', 'Stop flushing every partition (events stay buffered up to the bridge\'s limit, then on the bus).'],
    ['resume', 'Flush again (also after a permanent failure paused a partition).'],
  ] as const) {
    stream
      .command(`${name} <spec>`)
      .description(what)
      .addHelpText('after', examples(`inferflow stream ${name} examples/pipelines/fraud-stream.json`))
      .action(async (file: string) => {
        const { ids } = await specAndIds(file);
        await withTemporal(async (client) => {
          for (const id of ids) {
            try {
              await client.workflow.getHandle(id).signal(name);
              console.log(`${id}: ${name}d`);
            } catch (err) {
              if ((err as Error).name !== 'WorkflowNotFoundError') throw err;
              console.log(`${id}: not started`);
            }
          }
        });
      });
  }
}
