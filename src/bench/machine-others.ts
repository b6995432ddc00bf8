// What else ran on the machine during a measured window: every task that is not the benchmark's
// own (kernel threads, other programs), interrupts and the hypervisor's steal, from /proc at the
// window's edges. On a shared 2-core VM a run's tail can be set by these rather than by the system
// under test: on this project's VM the guest's DAMON proactive reclaim (the `kdamond.0` kernel
// thread) was found taking ~35 ms bursts of a vCPU every 500 ms while a loaded cluster ran, and
// quadrupling the half-load p99 (docs/performance.md, session 22). Linux only; elsewhere null.
import { readdirSync, readFileSync } from 'node:fs';

/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these. */
export const CLK_TCK = 100;
const DAMON_KDAMONDS = '/sys/kernel/mm/damon/admin/kdamonds';

export interface MachineSample {
  tMs: number;
  /** /proc/stat's aggregate line, in clock ticks. */
  irqTicks: number;
  stealTicks: number;
  /** CPU ticks (user + system) of every process, by pid, with its name. */
  tasks: Map<number, { name: string; ticks: number }>;
}

export interface OthersReport {
  /** Cores used by tasks that are not the benchmark's own, over the window. */
  cores: number;
  /** Hard and soft interrupts (not charged to a task), and time the hypervisor ran something else. */
  irqCores: number;
  stealCores: number;
  /** The busiest of those tasks (at least 1 ms of CPU per second), busiest first. */
  top: Array<{ name: string; pid: number; cpuMsPerS: number }>;
  /** The kernel's DAMON monitors (proactive reclaim), if the machine has any: 'on' if one runs. */
  damon: 'on' | 'off' | null;
}

/** A /proc/<pid>/stat line: the command name, and user + system CPU in clock ticks. */
export function procStat(stat: string): { name: string; ticks: number } {
  // Fields after the command name (which may contain spaces and parentheses) start after the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, close), ticks: Number(fields[11]) + Number(fields[12]) };
}

export function sampleMachine(): MachineSample | null {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  // cpu  user nice system idle iowait irq softirq steal ...
  const cpu = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  const tasks = new Map<number, { name: string; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      tasks.set(pid, procStat(readFileSync(`/proc/${pid}/stat`, 'utf8')));
    } catch {
      // the process ended between the listing and the read
    }
  }
  return { tMs: performance.now(), irqTicks: (cpu[5] ?? 0) + (cpu[6] ?? 0), stealTicks: cpu[7] ?? 0, tasks };
}

/** Everything between two samples that is not one of `ownPids` (a task that started in the window counts from zero). */
export function othersBetween(a: MachineSample, b: MachineSample, ownPids: ReadonlySet<number>): OthersReport {
  const seconds = Math.max((b.tMs - a.tMs) / 1000, 1e-9);
  let ticks = 0;
  const busy: Array<{ name: string; pid: number; cpuMsPerS: number }> = [];
  for (const [pid, end] of b.tasks) {
    if (ownPids.has(pid)) continue;
    const used = end.ticks - (a.tasks.get(pid)?.ticks ?? 0);
    if (used <= 0) continue;
    ticks += used;
    const cpuMsPerS = (used / CLK_TCK) * 1000 / seconds;
    if (cpuMsPerS >= 1) busy.push({ name: end.name, pid, cpuMsPerS: Math.round(cpuMsPerS * 10) / 10 });
  }
  busy.sort((x, y) => y.cpuMsPerS - x.cpuMsPerS);
  const cores = (t: number) => Math.round((t / CLK_TCK / seconds) * 1000) / 1000;
  return { cores: cores(ticks), irqCores: cores(b.irqTicks - a.irqTicks), stealCores: cores(b.stealTicks - a.stealTicks), top: busy.slice(0, 3), damon: damonState() };
}

function damonState(): 'on' | 'off' | null {
  let ids: string[];
  try {
    ids = readdirSync(DAMON_KDAMONDS).filter((x) => /^\d+$/.test(x));
  } catch {
    return null;
  }
  if (ids.length === 0) return null;
  const on = ids.some((id) => {
    try {
      return readFileSync(`${DAMON_KDAMONDS}/${id}/state`, 'utf8').trim() === 'on';
    } catch {
      return false;
    }
  });
  return on ? 'on' : 'off';
}

/** A DAMON monitor this busy in the window is worth a pointer to what it does to a cluster's tail. */
const DAMON_NOTE_MS_PER_S = 10;

/** One line for a report: "0.07 cores (kdamond.0 68 ms/s, …); interrupts 0.02, steal 0.00; DAMON on". */
export function othersText(o: OthersReport): string {
  const top = o.top.map((t) => `${t.name} ${t.cpuMsPerS} ms/s`).join(', ');
  const busyDamon = o.top.some((t) => t.name.startsWith('kdamond') && t.cpuMsPerS >= DAMON_NOTE_MS_PER_S);
  const note = busyDamon ? ' (its memory sampling stalls every process in bursts: docs/operations.md, "The host")' : '';
  return `${o.cores.toFixed(2)} cores${top ? ` (${top})` : ''}; interrupts ${o.irqCores.toFixed(2)}, steal ${o.stealCores.toFixed(2)}${o.damon ? `; DAMON ${o.damon}${note}` : ''}`;
}
