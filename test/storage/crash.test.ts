// Crash consistency: a child appends and acknowledges records and is SIGKILLed at random moments, many
// times over one log. After each kill the log is recovered and checked: every acknowledged record is
// present and intact, every record reported is intact (content is a function of lsn and the writing
// cycle), and LSNs are contiguous. SYNOD_CRASH_CYCLES raises the count for a soak (npm run crash:storage).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { openLog, type LogBackend } from '../../src/storage/log.js';
import { tryLoadNative } from '../../src/storage/native.js';
import { crashPayload } from './crash-child.js';
import { tempDir } from './compliance.js';

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const CYCLES = Number(process.env['SYNOD_CRASH_CYCLES'] ?? 100);

async function runChild(dir: string, backend: LogBackend, cycle: number, killAfterMs: number, seed: number) {
  const child = spawn(process.execPath, [CHILD, dir, backend, String(cycle), String(256 * 1024), String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let timer: NodeJS.Timeout | null = null;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (timer === null && out.includes('start ')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  if (timer) clearTimeout(timer);
  assert.ok(code === null, `child exited by itself (code ${code}): ${err}`);
  let acked = 0;
  let start = 0;
  for (const line of out.split('\n')) {
    const [word, value] = line.split(' ');
    if (word === 'ack') acked = Math.max(acked, Number(value));
    if (word === 'start') start = Number(value);
  }
  return { acked, start };
}

function crashTest(backend: LogBackend, base: string | undefined, cycles: number): void {
  // ~0.25 s per cycle on a loaded 2-core machine: the soak (500 cycles) needs more than the default 120 s.
  test(`${backend} log survives ${cycles} SIGKILLs with every acknowledged record intact`, { timeout: Math.max(120_000, cycles * 1_000) }, async () => {
    const { dir, cleanup } = tempDir(base, 'synod-crash-');
    try {
      // writtenBy[lsn] = the cycle whose content the durable record at lsn must carry (once known).
      const writtenBy: number[] = [];
      let durableKnown = 0;
      let seed = 12345;
      const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      let torn = 0;
      for (let cycle = 1; cycle <= cycles; cycle++) {
        const { acked, start } = await runChild(dir, backend, cycle, 2 + Math.floor(random() * 40), seed);
        assert.ok(start === durableKnown + 1 || cycle === 1, `child started at ${start}, expected ${durableKnown + 1}`);
        for (let lsn = start; lsn <= acked; lsn++) writtenBy[lsn] = cycle;
        let expectLsn = -1;
        const log = await openLog(dir, backend, {
          segmentBytes: 256 * 1024,
          onRecord: (r) => {
            if (expectLsn >= 0) assert.equal(r.lsn, expectLsn, 'lsns are contiguous');
            expectLsn = r.lsn + 1;
            assert.equal(r.slot, r.lsn, `record ${r.lsn} has the wrong slot`);
            const known = writtenBy[r.lsn];
            if (known !== undefined) assert.equal(r.ballot, known, `record ${r.lsn} was written by cycle ${known}, found ${r.ballot}`);
            else assert.equal(r.ballot, cycle, `unacknowledged record ${r.lsn} must come from the last cycle`);
            assert.deepEqual(r.payload, crashPayload(r.lsn, r.ballot), `record ${r.lsn} payload damaged`);
          },
        });
        const { headLsn, tailLsn, tornTail } = log.recovery;
        if (tornTail) torn++;
        assert.ok(tailLsn - 1 >= acked, `cycle ${cycle}: acknowledged up to ${acked}, recovered only to ${tailLsn - 1}`);
        assert.ok(headLsn <= Math.max(acked, durableKnown) + 1);
        // What recovery reported is durable now (it fdatasyncs): pin it for the next cycles.
        for (let lsn = start; lsn < tailLsn; lsn++) if (writtenBy[lsn] === undefined) writtenBy[lsn] = cycle;
        writtenBy.length = tailLsn;
        durableKnown = tailLsn - 1;
        await log.close();
      }
      assert.ok(durableKnown > cycles, 'the children made progress');
      console.log(`# ${backend}: ${cycles} kills, ${durableKnown} records durable, ${torn} torn tails cut`);
    } finally {
      cleanup();
    }
  });
}

crashTest('file', undefined, CYCLES);
if (tryLoadNative().addon) crashTest('pmem', existsSync('/dev/shm') ? '/dev/shm' : undefined, Math.ceil(CYCLES / 2.5));
