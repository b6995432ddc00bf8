// Child process for the crash test: appends records, commits (several commits in flight at once), and
// writes "ack <lsn>" to stdout (synchronously) only after commit() resolved. The parent SIGKILLs it at a
// random moment. Record content is a function of (lsn, cycle): slot = lsn, ballot = cycle.
// Usage: node crash-child.js <dir> <backend> <cycle> <segmentBytes> <seed>
import { writeSync } from 'node:fs';
import { openLog, parseLogBackend } from '../../src/storage/log.js';

export function crashPayload(lsn: number, cycle: number): Uint8Array {
  let h = (Math.imul(lsn, 0x9e3779b1) ^ Math.imul(cycle + 1, 0x85ebca6b)) >>> 0;
  const length = h % 1500;
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    h = (Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) + i) >>> 0;
    bytes[i] = h & 0xff;
  }
  return bytes;
}

async function main(): Promise<void> {
  const [dir, backendText, cycleText, segmentText, seedText] = process.argv.slice(2);
  const cycle = Number(cycleText);
  let seed = Number(seedText) >>> 0 || 1;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const log = await openLog(dir!, parseLogBackend(backendText!), { segmentBytes: Number(segmentText), spareSegmentsMax: 2 });
  writeSync(1, `start ${log.recovery.tailLsn} ${log.recovery.headLsn}\n`);
  let inflight = 0;
  for (;;) {
    const n = 1 + Math.floor(random() * 40);
    for (let i = 0; i < n; i++) {
      const lsn = log.headTailCapacity().appendedTail;
      const got = log.tentativelyAppend({ type: 1, slot: lsn, ballot: cycle, payload: crashPayload(lsn, cycle) });
      if (got !== lsn) throw new Error(`lsn ${got} != ${lsn}`);
    }
    inflight++;
    void log.commit().then((durable) => {
      inflight--;
      writeSync(1, `ack ${durable}\n`);
    });
    if (inflight > 3) await log.commit();
    const htc = log.headTailCapacity();
    if (random() < 0.05 && htc.tail - htc.head > 300) await log.advanceHead(htc.tail - 200);
    if (random() < 0.3) await new Promise((resolve) => setImmediate(resolve));
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((error) => {
    writeSync(2, `crash-child failed: ${(error as Error).stack}\n`);
    process.exit(3);
  });
}
