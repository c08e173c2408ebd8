/** Events → partitions by a stable hash of their key (FNV-1a, 32 bits): the same key always lands on the same workflow, so order per key holds. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
