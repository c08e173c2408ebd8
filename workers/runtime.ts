import { Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';
import type { Logger as PinoLogger, Level } from 'pino';

let installed = false;

const PINO_LEVEL: Record<LogLevel, Level> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * The Temporal SDK's `Logger` over a pino logger: the SDK's own lines, workflow `log` calls and
 * Core's forwarded lines come out as the same JSON lines as the worker's, with the SDK's
 * metadata (sdkComponent, taskQueue, workflowId, …) as fields. pino's level filters them.
 */
export function temporalLogger(pino: PinoLogger): Logger {
  const log = (level: LogLevel, message: string, meta?: LogMetadata) => pino[PINO_LEVEL[level]](meta ?? {}, message);
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}

/**
 * Hand the process's pino logger to the Temporal SDK's runtime (once per process; later calls
 * are ignored). Core's native lines are forwarded to it too: WARN and above, or only ERROR when
 * the logger is quieter than that.
 */
export function installTemporalRuntime(logger: PinoLogger): void {
  if (installed) return;
  installed = true;
  const core: LogLevel = logger.isLevelEnabled('warn') ? 'WARN' : 'ERROR';
  Runtime.install({
    logger: temporalLogger(logger),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core, other: 'ERROR' }), forward: {} } },
  });
}

/**
 * Shut the SDK's runtime down when no worker will run (start-up failed before `Worker.run`):
 * its native threads and the SIGINT/SIGTERM handlers it installs would otherwise keep the
 * process alive, deaf to the signals meant to stop it.
 */
export async function shutdownTemporalRuntime(): Promise<void> {
  if (!installed) return;
  await Runtime.instance().shutdown();
}
