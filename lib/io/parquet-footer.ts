/**
 * The `isAdjustedToUTC` flag of Parquet `TIMESTAMP(NANOS)` columns, read from and written into
 * a file's footer in place.
 *
 * DuckDB has no nanosecond type with a time zone: it reads `TIMESTAMP(NANOS, isAdjustedToUTC=true)`
 * (what pandas and pyarrow write for timezone-aware datetimes) as `TIMESTAMP WITH TIME ZONE`, at
 * microsecond precision, but `TIMESTAMP(NANOS, isAdjustedToUTC=false)` as `TIMESTAMP_NS`, exactly.
 * Both store the same int64 (nanoseconds since the epoch, UTC), so clearing the flag makes DuckDB
 * read the exact instant as a naive UTC timestamp; setting it again on a file DuckDB wrote gives
 * the column back its time zone. The flag is a boolean field of the footer's Thrift compact
 * encoding, whose value lives in the field header's type nibble: changing it rewrites one byte
 * and never moves anything else.
 */
import fs from 'node:fs/promises';
import { CorruptArtifactError } from '../errors';

export interface NanosTimestampFlag {
  /** Top-level column name. */
  column: string;
  /** The flag's current value. */
  adjustedToUtc: boolean;
  /** File offset of the byte holding the flag. */
  offset: number;
}

const MAGIC = 'PAR1';
const TRUE = 1;
const FALSE = 2;
const STRUCT = 12;

/** A reader over Thrift compact-protocol bytes that skips what it does not need. */
class Compact {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly file: string,
  ) {}

  private fail(): never {
    throw new CorruptArtifactError(`${this.file}: unreadable Parquet footer`, { object: this.file });
  }

  byte(): number {
    if (this.pos >= this.buf.length) this.fail();
    return this.buf[this.pos++]!;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) this.fail();
    }
  }

  int(): number {
    const v = this.varint();
    return Number((v >> 1n) ^ -(v & 1n));
  }

  binary(): Buffer {
    const n = Number(this.varint());
    if (this.pos + n > this.buf.length) this.fail();
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Next field header of a struct: its id and type, or undefined at the struct's end. The header's offset is `at`. */
  field(last: number): { id: number; type: number; at: number } | undefined {
    const at = this.pos;
    const b = this.byte();
    if (b === 0) return undefined;
    const delta = b >> 4;
    return { id: delta === 0 ? this.int() : last + delta, type: b & 0x0f, at };
  }

  listHeader(): { size: number; type: number } {
    const b = this.byte();
    const size = b >> 4 === 15 ? Number(this.varint()) : b >> 4;
    return { size, type: b & 0x0f };
  }

  /** Skip one value of a type (booleans as struct fields carry no bytes: `inField`). */
  skip(type: number, inField = true): void {
    switch (type) {
      case TRUE:
      case FALSE:
        if (!inField) this.byte();
        return;
      case 3:
        this.byte();
        return;
      case 4:
      case 5:
      case 6:
        this.varint();
        return;
      case 7:
        this.pos += 8;
        return;
      case 8:
        this.binary();
        return;
      case 9:
      case 10: {
        const { size, type: t } = this.listHeader();
        for (let i = 0; i < size; i++) this.skip(t, false);
        return;
      }
      case 11: {
        const size = Number(this.varint());
        if (size === 0) return;
        const kv = this.byte();
        for (let i = 0; i < size; i++) {
          this.skip(kv >> 4, false);
          this.skip(kv & 0x0f, false);
        }
        return;
      }
      case STRUCT:
        this.eachField(() => false);
        return;
      default:
        this.fail();
    }
  }

  /** Visit a struct's fields; `visit` returns true when it consumed the field's value. */
  eachField(visit: (f: { id: number; type: number; at: number }) => boolean): void {
    let last = 0;
    for (let f = this.field(last); f; f = this.field(last)) {
      if (!visit(f)) this.skip(f.type);
      last = f.id;
    }
  }
}

async function readFooter(file: string): Promise<{ footer: Buffer; start: number }> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const tail = Buffer.alloc(8);
    if (size < 12 || (await fh.read(tail, 0, 8, size - 8)).bytesRead !== 8 || tail.toString('latin1', 4) !== MAGIC) {
      throw new CorruptArtifactError(`${file} is not a Parquet file (no PAR1 footer)`, { object: file });
    }
    const length = tail.readUInt32LE(0);
    const start = size - 8 - length;
    if (start < 4) throw new CorruptArtifactError(`${file}: Parquet footer length ${length} exceeds the file`, { object: file });
    const footer = Buffer.alloc(length);
    await fh.read(footer, 0, length, start);
    return { footer, start };
  } finally {
    await fh.close();
  }
}

/**
 * The `isAdjustedToUTC` flag of every top-level `TIMESTAMP(NANOS)` column of a Parquet file.
 * @throws CorruptArtifactError a file without a readable (unencrypted) Parquet footer
 */
export async function nanosTimestampFlags(file: string): Promise<NanosTimestampFlag[]> {
  const { footer, start } = await readFooter(file);
  const r = new Compact(footer, file);
  const flags: NanosTimestampFlag[] = [];
  r.eachField((f) => {
    if (f.id !== 2 || f.type !== 9) return false;
    // FileMetaData.schema: the schema tree flattened depth-first; element 0 is the root.
    const { size } = r.listHeader();
    const remaining: number[] = [];
    for (let i = 0; i < size; i++) {
      let name = '';
      let children = 0;
      let flag: { adjusted: boolean; at: number } | undefined;
      let nanos = false;
      r.eachField((e) => {
        if (e.id === 4 && e.type === 8) name = r.binary().toString('utf8');
        else if (e.id === 5 && e.type === 5) children = r.int();
        else if (e.id === 10 && e.type === STRUCT) {
          // LogicalType union; 8 = TIMESTAMP {1: isAdjustedToUTC, 2: unit {1: MILLIS, 2: MICROS, 3: NANOS}}.
          r.eachField((l) => {
            if (l.id !== 8 || l.type !== STRUCT) return false;
            r.eachField((t) => {
              if (t.id === 1 && (t.type === TRUE || t.type === FALSE)) flag = { adjusted: t.type === TRUE, at: t.at };
              else if (t.id === 2 && t.type === STRUCT) r.eachField((u) => ((nanos ||= u.id === 3), false));
              else return false;
              return true;
            });
            return true;
          });
        } else return false;
        return true;
      });
      const depth = remaining.length;
      if (depth === 1 && nanos && flag) flags.push({ column: name, adjustedToUtc: flag.adjusted, offset: start + flag.at });
      if (depth > 0) remaining[depth - 1]!--;
      if (children > 0) remaining.push(children);
      while (remaining.length > 0 && remaining[remaining.length - 1] === 0) remaining.pop();
    }
    return true;
  });
  return flags;
}

/** Set the `isAdjustedToUTC` flag of the given columns (as found by nanosTimestampFlags) in place. */
export async function setAdjustedToUtc(file: string, flags: readonly NanosTimestampFlag[], adjustedToUtc: boolean): Promise<void> {
  if (flags.length === 0) return;
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    for (const f of flags) {
      await fh.read(b, 0, 1, f.offset);
      const type = b[0]! & 0x0f;
      if (type !== TRUE && type !== FALSE) throw new CorruptArtifactError(`${file}: no timestamp flag at footer offset ${f.offset} (column ${f.column})`, { object: file });
      b[0] = (b[0]! & 0xf0) | (adjustedToUtc ? TRUE : FALSE);
      await fh.write(b, 0, 1, f.offset);
    }
  } finally {
    await fh.close();
  }
}
