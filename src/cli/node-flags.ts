// V8 flags a replica process should run with. They must be given on node's command line: V8 sizes
// its heap when the process starts (v8.setFlagsFromString at run time has no effect on this one, and
// NODE_OPTIONS refuses it).
//
// --initial-old-space-size: a replica's live heap is small (~10 MB without the state machine's data),
// and V8 then sets the old generation's limit so close to it that the slack is no larger than the
// young generation: a full mark-compact started every ~300 ms under load (45-50 in 13 s per replica,
// 3-14 ms pauses plus incremental steps, in every process on the write path). Starting the old
// generation at 64 MiB lets it fill before the first one: 6-7 in the same run, for ~30 MiB more
// peak RSS (docs/performance.md, "Session 8"). A larger live heap (a big state machine) sizes itself
// as before: the flag only sets where the limit starts.
export const REPLICA_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/** `REPLICA_NODE_FLAGS` plus `extra`; a flag given in `extra` replaces ours of the same name. */
export function replicaNodeArgs(extra: readonly string[]): string[] {
  const named = new Set(extra.map((a) => a.split('=')[0]));
  return [...REPLICA_NODE_FLAGS.filter((f) => !named.has(f.split('=')[0])), ...extra];
}
