/** Plain-text tables and numbers for terminal output. */
export function table(rows: (string | number)[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0]!.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const line = (r: (string | number)[]) => r.map((v, c) => (typeof v === 'number' ? String(v).padStart(widths[c]!) : String(v).padEnd(widths[c]!))).join('  ').trimEnd();
  const out = all.map(line);
  if (header) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function bar(done: number, total: number, width = 28): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}
