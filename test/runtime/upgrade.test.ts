// A rolling upgrade (issue #4, RSL parity: "a cluster can be upgraded one replica at a time"):
// a running 3-replica cluster of the PREVIOUS release (the last build before protocol version 2,
// commit PREVIOUS_RELEASE, built here from git) is upgraded to this build one replica at a time,
// each replica killed and restarted on its own data directory, while clients keep writing. Mixed
// pairs speak version 1 (this build redials an old replica without hello extensions); once all
// run this build they speak 2 and the primary binds every incarnation. At the end every
// acknowledged write is applied exactly once, in the same order, on every replica.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHILD, children, converge, freePort, ProcNode, waitForLeader, writeAll } from './proc-harness.js';

/** The last commit of session 2: protocol version range [1, 1], hellos without extensions. */
const PREVIOUS_RELEASE = 'e2db41a';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Builds the previous release's runtime and test child into `dir`; null when git cannot provide it. */
function buildPrevious(dir: string): string | null {
  const has = spawnSync('git', ['-C', REPO, 'cat-file', '-e', `${PREVIOUS_RELEASE}^{commit}`]);
  if (has.status !== 0) return null;
  execFileSync('sh', ['-c', `git -C "${REPO}" archive ${PREVIOUS_RELEASE} | tar -x -C "${dir}"`]);
  return dir;
}

test('rolling upgrade from the previous release, one replica at a time under writes: nothing acknowledged is lost', { timeout: 300_000 }, async (t) => {
  const oldDir = await mkdtemp(join(tmpdir(), 'synod-previous-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'synod-upgrade-'));
  try {
    if (buildPrevious(oldDir) === null) {
      t.skip(`commit ${PREVIOUS_RELEASE} is not in this clone (shallow?): cannot build the previous release`);
      return;
    }
    await symlink(join(REPO, 'node_modules'), join(oldDir, 'node_modules'));
    await writeFile(
      join(oldDir, 'tsconfig.upgrade.json'),
      JSON.stringify({ extends: './tsconfig.json', compilerOptions: { declaration: false, sourceMap: false }, include: ['src/**/*.ts', 'test/runtime/child-replica.ts', 'test/runtime/counter.ts'] }),
    );
    execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(oldDir, 'tsconfig.upgrade.json')], { stdio: 'inherit', timeout: 240_000 });
    const oldChild = join(oldDir, 'dist/test/runtime/child-replica.js');

    const ports: Record<number, number> = {};
    for (const id of [1, 2, 3]) ports[id] = await freePort();
    const nodes = [1, 2, 3].map((id) => new ProcNode(id, join(dataDir, `r${id}`), ports));
    for (const n of nodes) n.script = oldChild;
    await Promise.all(nodes.map((n) => n.start()));
    const acked = new Set<string>();
    await writeAll(() => nodes, 1, 1, 20, acked);
    const oldStatus = (await nodes[0]!.call('status')).status as Record<string, unknown>;
    assert.equal(oldStatus.incarnations, undefined, 'the previous release has no incarnation book (it really is the old build)');

    // Clients keep writing through the whole upgrade.
    let writing = true;
    let seq = 1000;
    const writer = (async () => {
      while (writing) {
        await writeAll(() => nodes.filter((n) => n.alive()), 2, seq, 10, acked);
        seq += 10;
      }
    })();

    const leader = await waitForLeader(nodes);
    const order = [...nodes.filter((n) => n !== leader), leader]; // followers first, the leader last
    for (const node of order) {
      const before = acked.size;
      await node.kill9();
      node.script = CHILD;
      await node.start();
      // Caught up: it applied at least what the cluster had committed when it came back.
      const target = Math.max(...(await Promise.all(nodes.filter((n) => n !== node).map(async (n) => ((await n.call('status')).status as { commitSlot?: number } | undefined)?.commitSlot ?? 0))));
      const deadline = Date.now() + 60_000;
      for (;;) {
        const s = (await node.call('status')).status as { appliedSlot: number } | undefined;
        if (s && s.appliedSlot >= target) break;
        if (Date.now() > deadline) throw new Error(`replica ${node.id} did not catch up to slot ${target} after its upgrade`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // Mixed versions serve writes.
      const waitUntil = Date.now() + 60_000;
      while (acked.size < before + 10 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 100));
      assert.ok(acked.size >= before + 10, `writes acknowledged after replica ${node.id} was upgraded (${acked.size - before})`);
    }
    writing = false;
    await writer;
    await converge(nodes, acked, 60_000);

    // All on this build: every incarnation is bound, to each replica's own.
    const deadline = Date.now() + 30_000;
    let statuses: Array<{ incarnation: string; incarnations: Record<string, string> }> = [];
    for (;;) {
      statuses = (await Promise.all(nodes.map((n) => n.call('status')))).map((r) => r.status as (typeof statuses)[number]);
      const own = Object.fromEntries(nodes.map((n, i) => [String(n.id), statuses[i]!.incarnation]));
      if (statuses.every((s) => JSON.stringify(s.incarnations) === JSON.stringify(own))) break;
      if (Date.now() > deadline) assert.fail(`incarnations not all bound after the upgrade: ${JSON.stringify(statuses.map((s) => s.incarnations))} vs ${JSON.stringify(own)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(acked.size > 40, `writes went on during the upgrade (${acked.size} acknowledged)`);
    await Promise.all(nodes.map((n) => n.kill9()));
  } finally {
    // Whatever failed, no replica outlives the test (a live child keeps the test file running).
    for (const c of children) c.kill('SIGKILL');
    await rm(oldDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
});
