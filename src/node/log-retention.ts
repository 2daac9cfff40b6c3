/**
 * How much of the log a compaction keeps. The log after the last compaction is held in
 * memory (storage/entry-log.ts), so it is bounded by entries and by bytes: past either
 * bound, the newer half is kept (by count), or fewer entries when that half would take more
 * than half the bytes allowed (entries taken as of the log's average size).
 */

/** Entries to keep at the log's end, or null while the log is within both bounds. */
export function logEntriesToKeep(count: number, bytes: number, logEntriesMax: number, logBytesMax: number): number | null {
  if (count <= logEntriesMax && bytes <= logBytesMax) return null;
  const keepByBytes = bytes <= logBytesMax ? Infinity : Math.floor((count * logBytesMax) / 2 / bytes);
  return Math.min(Math.floor(logEntriesMax / 2), keepByBytes);
}
