// A counter replica in its own process, driven by its parent over IPC (for multi-process tests).
// argv: id, dataDir, clusterJson ({id: port}), options JSON
import { SynodReplica } from '../../src/runtime/replica.js';
import { CounterMachine } from './counter.js';

const [idText, dataDir, clusterJson, optionsJson] = process.argv.slice(2);
const id = Number(idText);
const ports = JSON.parse(clusterJson!) as Record<string, number>;
const { listenPort, ...extra } = JSON.parse(optionsJson ?? '{}') as Record<string, unknown>;
const members = new Map(Object.entries(ports).map(([k, port]) => [Number(k), { host: '127.0.0.1', port }] as const));
// A joining replica (extra.join) is not in `ports` (the initial members): it listens on listenPort.
const listen = typeof listenPort === 'number' ? { listen: { host: '127.0.0.1', port: listenPort } } : {};
const machine = new CounterMachine();
const replica = await SynodReplica.start({
  id,
  clusterId: 'mp-test',
  dataDir: dataDir!,
  members,
  stateMachine: machine,
  logBackend: 'file',
  // A busy 2-core machine can starve a replica for a while: election timeouts sized for that.
  core: { electionTimeoutMinMs: 600, electionTimeoutMaxMs: 1200, leaseMs: 400, heartbeatIntervalMs: 100 },
  logger: process.env.SYNOD_TEST_LOG ? (level, msg, fields) => console.error(`[r${id}] ${level} ${msg}`, fields ?? '') : () => {},
  ...listen,
  ...extra,
});

type Request = {
  rid: number;
  op: 'propose' | 'openSession' | 'read' | 'status' | 'applied' | 'snapshot' | 'addMember' | 'removeMember';
  value?: string;
  clientId?: number;
  seq?: number;
  id?: number;
  port?: number;
};
process.on('message', (raw) => {
  const req = raw as Request;
  const reply = (body: unknown) => process.send?.({ rid: req.rid, ...(body as object) });
  const fail = (e: unknown) => reply({ error: (e as Error).name, code: (e as { code?: string }).code, message: (e as Error).message });
  switch (req.op) {
    case 'propose':
      replica
        .propose(new TextEncoder().encode(req.value!), req.clientId !== undefined ? { clientId: req.clientId, seq: req.seq!, floor: req.seq!, timeoutMs: 3000 } : { timeoutMs: 3000 })
        .then((r) => reply({ result: new TextDecoder().decode(r) }), fail);
      break;
    case 'openSession':
      replica.openSession({ timeoutMs: 3000 }).then((session) => reply({ session }), fail);
      break;
    case 'read':
      replica.read(new Uint8Array(0), { consistency: 'linearizable', maxWaitMs: 2000 }).then((r) => reply({ result: new TextDecoder().decode(r.result), slot: r.appliedSlot }), fail);
      break;
    case 'status':
      reply({ status: replica.status() });
      break;
    case 'applied':
      reply({ applied: machine.applied, total: machine.total, status: replica.status(), counters: replica.counters() });
      break;
    case 'snapshot':
      replica.takeSnapshot().then((slot) => reply({ slot }), fail);
      break;
    case 'addMember':
      replica.addMember(req.id!, { host: '127.0.0.1', port: req.port! }, { timeoutMs: 30_000 }).then(() => reply({ ok: true }), fail);
      break;
    case 'removeMember':
      replica.removeMember(req.id!, { timeoutMs: 30_000 }).then(() => reply({ ok: true }), fail);
      break;
  }
});
process.on('SIGTERM', () => {
  void replica.close().then(() => process.exit(0));
});
process.send?.({ ready: true });
