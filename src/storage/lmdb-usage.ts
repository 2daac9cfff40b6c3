/**
 * How much of an LMDB environment its data occupies: the branch, leaf and overflow pages of
 * each database, not the file's size (LMDB reuses freed pages but never shrinks its file, so
 * a quota on the file could never clear).
 */

interface StatsSource {
  getStats(): unknown;
}

interface DbStats {
  readonly pageSize: number;
  readonly treeBranchPageCount: number;
  readonly treeLeafPageCount: number;
  readonly overflowPages: number;
}

export function pagesInUseBytes(dbs: readonly StatsSource[]): number {
  let bytes = 0;
  for (const db of dbs) {
    const s = db.getStats() as DbStats;
    bytes += s.pageSize * (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages);
  }
  return bytes;
}
