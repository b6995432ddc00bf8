import type { Command, Message, Value } from '../core/types.js';
import { formatBallot } from '../core/ballot.js';

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

export function commandKey(c: Pick<Command, 'clientId' | 'seq'>): string {
  return `${c.clientId}.${c.seq}`;
}

/** Canonical identity of a slot value: equal keys iff equal values. */
export function valueKey(v: Value): string {
  switch (v.kind) {
    case 'noop':
      return 'noop';
    case 'config':
      return `config:${v.members.join(',')}`;
    case 'batch':
      return `batch${v.last ? '!' : ''}@${v.timeMs ?? '-'}:` + v.commands.map((c) => `${c.clientId}.${c.seq}.${c.floor}.${hex(c.payload)}`).join('|');
  }
}

export function describeValue(v: Value): string {
  switch (v.kind) {
    case 'noop':
      return 'noop';
    case 'config':
      return `config[${v.members.join(',')}]`;
    case 'batch':
      return `batch[${v.commands.map(commandKey).join(' ')}]`;
  }
}

export function describeMessage(m: Message): string {
  const head = `${m.type} ${m.from}->${m.to}`;
  switch (m.type) {
    case 'prepare':
      return `${head} b=${formatBallot(m.ballot)} from=${m.fromSlot}${m.transfer ? ' transfer' : ''}`;
    case 'promise':
      return `${head} b=${formatBallot(m.ballot)} entries=${m.entries.length} chosen=${m.chosenPrefix}`;
    case 'accept':
      return `${head} b=${formatBallot(m.ballot)} s=${m.slot} ${describeValue(m.value)} commit=${m.commitSlot}`;
    case 'accepted':
      return `${head} b=${formatBallot(m.ballot)} s=${m.slot}`;
    case 'reject':
      return `${head} b=${formatBallot(m.ballot)} promised=${formatBallot(m.promised)}`;
    case 'heartbeat':
      return `${head} b=${formatBallot(m.ballot)} commit=${m.commitSlot} round=${m.round}`;
    case 'heartbeatAck':
      return `${head} b=${formatBallot(m.ballot)} round=${m.round} chosen=${m.chosenPrefix}`;
    case 'catchupRequest':
      return `${head} from=${m.fromSlot}`;
    case 'catchupReply':
      return `${head} entries=${m.entries.length} commit=${m.commitSlot} snap=${m.snapshotSlot}`;
    case 'timeoutNow':
      return `${head} b=${formatBallot(m.ballot)}`;
    case 'notMember':
      return `${head} config[${m.members.join(',')}]@${m.configFromSlot}`;
  }
}
