// Test-only hooks of `synod start`, for the black-box harness (test/jepsen). None is active unless
// SYNOD_TEST_HOOKS=1, and each one that is logs a loud warning: a replica running with them is
// not fit to hold data.
//
//   SYNOD_PLANTED_BUG=<bug>        run the protocol core with a planted bug (src/core/options.ts
//                                  PlantedBug), to show that the harness catches it.
//   SYNOD_TEST_DISK_FAULT=<file>   a control file, polled every DISK_FAULT_POLL_MS: while it holds
//                                  "ENOSPC" or "EIO", the storage layer's writes/syncs fail that
//                                  way (src/storage/io.ts setDiskFaultHook); empty or absent: no
//                                  fault. The harness writes the file to fill or break the disk.

import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { PlantedBug } from '../core/options.js';
import { setDiskFaultHook, type DiskFaultMode } from '../storage/io.js';
import { UsageError } from './config.js';

const PLANTED_BUGS: readonly PlantedBug[] = ['acceptor-ignores-promise', 'acceptor-overwrites-same-ballot', 'config-governs-at-once', 'leader-rebatches-retransmit', 'leader-skips-recovery', 'promise-before-persist', 'reply-before-persist', 'window-ignored', 'member-ignores-non-member'];
const DISK_FAULT_POLL_MS = 50;

export interface TestHooks {
  plantedBug?: PlantedBug;
}

/** Reads the hooks from the environment, installs the disk fault hook, logs what is active. */
export function installTestHooks(env: NodeJS.ProcessEnv, log: Logger): TestHooks {
  const bug = env.SYNOD_PLANTED_BUG;
  const diskFile = env.SYNOD_TEST_DISK_FAULT;
  if (env.SYNOD_TEST_HOOKS !== '1') {
    if (bug || diskFile) log.warn('SYNOD_PLANTED_BUG / SYNOD_TEST_DISK_FAULT are ignored without SYNOD_TEST_HOOKS=1');
    return {};
  }
  const hooks: TestHooks = {};
  if (bug) {
    if (!(PLANTED_BUGS as readonly string[]).includes(bug)) throw new UsageError(`SYNOD_PLANTED_BUG must be one of ${PLANTED_BUGS.join(', ')}, got ${bug}`);
    hooks.plantedBug = bug as PlantedBug;
    log.warn({ plantedBug: bug }, `TEST HOOK: the protocol core runs with the PLANTED BUG ${bug}; this replica is deliberately unsafe`);
  }
  if (diskFile) {
    let mode: DiskFaultMode | null = null;
    const poll = () => {
      let text = '';
      try {
        text = readFileSync(diskFile, 'utf8').trim();
      } catch {
        text = '';
      }
      const next = text === 'ENOSPC' || text === 'EIO' ? text : null;
      if (next !== mode) log.warn({ diskFault: next }, next ? `TEST HOOK: disk fault ${next} injected` : 'TEST HOOK: disk fault cleared');
      mode = next;
    };
    poll();
    setInterval(poll, DISK_FAULT_POLL_MS).unref();
    setDiskFaultHook(() => mode);
    log.warn({ control: diskFile }, 'TEST HOOK: disk faults can be injected through the control file (the native log writer is off)');
  }
  return hooks;
}
