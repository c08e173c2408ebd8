import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/index';
import { classifyError, EXIT_CODES } from '../../cli/exit-codes';
import { calendarToCron, humanDuration } from '../../client/schedules';
import { ConfigError } from '../../lib/config/env';
import { InvalidInputError, NotFoundError, TransientError } from '../../lib/errors';

const command = (path: string) => path.split(' ').reduce((cmd, name) => cmd.commands.find((c) => c.name() === name)!, buildProgram());

describe('CLI help', () => {
  it('serve --help prints each default once', () => {
    const help = command('serve').helpInformation();
    expect(help.match(/8080/g)).toHaveLength(1);
    expect(help).toContain('(default: 8080)');
    expect(help.match(/127\.0\.0\.1/g)).toHaveLength(1);
  });

  it('models register requires --metadata', () => {
    const metadata = command('models register').options.find((o) => o.long === '--metadata');
    expect(metadata?.mandatory).toBe(true);
  });

  it('every command has a description', () => {
    const missing: string[] = [];
    const walk = (cmd: ReturnType<typeof buildProgram>, prefix: string) => {
      for (const c of cmd.commands) {
        if (!c.description()) missing.push(`${prefix}${c.name()}`);
        walk(c, `${prefix}${c.name()} `);
      }
    };
    walk(buildProgram(), '');
    expect(missing).toEqual([]);
  });
});

describe('exit codes', () => {
  it('one code per kind of failure', () => {
    const named = (name: string, extra: object = {}) => Object.assign(new Error('x'), { name }, extra);
    expect(classifyError(new InvalidInputError('bad')).code).toBe(EXIT_CODES.badInput);
    expect(classifyError(new ConfigError('bad')).code).toBe(EXIT_CODES.badInput);
    expect(classifyError(new NotFoundError('gone')).code).toBe(EXIT_CODES.notFound);
    expect(classifyError(new TransientError('down')).code).toBe(EXIT_CODES.unavailable);
    expect(classifyError(named('WorkflowFailedError')).code).toBe(EXIT_CODES.runFailed);
    expect(classifyError(named('ScheduleNotFoundError', { scheduleId: 'nope' }))).toEqual({ code: EXIT_CODES.notFound, message: 'no such schedule: nope' });
    expect(classifyError(named('WorkflowNotFoundError', { workflowId: 'w' }))).toEqual({ code: EXIT_CODES.notFound, message: 'no such workflow: w' });
    expect(classifyError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).code).toBe(EXIT_CODES.unavailable);
    expect(classifyError(new Error('bug')).code).toBe(EXIT_CODES.error);
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.keys(EXIT_CODES).length);
  });
});

describe('schedule description', () => {
  const every = (start: number, end: number, step = 1) => [{ start, end, step }];
  const calendar = { second: every(0, 0), minute: every(0, 0), hour: every(3, 3), dayOfMonth: every(1, 31), month: [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }], dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }], year: [], comment: '' };

  it('shows calendars as the cron expressions they came from', () => {
    expect(calendarToCron(calendar as never)).toBe('0 3 * * *');
    expect(calendarToCron({ ...calendar, minute: every(0, 59, 15), hour: every(0, 23), dayOfWeek: [{ start: 'MONDAY', end: 'FRIDAY', step: 1 }] } as never)).toBe('*/15 * * * 1-5');
    expect(calendarToCron({ ...calendar, minute: [...every(5, 5), ...every(35, 35)] } as never)).toBe('5,35 3 * * *');
  });

  it('shows durations in units', () => {
    expect(humanDuration(21_600_000)).toBe('6h');
    expect(humanDuration(5_400_000)).toBe('1h30m');
    expect(humanDuration(86_400_000)).toBe('1d');
    expect(humanDuration(1_500)).toBe('1.5s');
  });
});
