/**
 * A kv state machine for unit tests over a store the test makes (the memory twin, say): a
 * `run` that applies one command as the next log entry and returns its result, and a
 * `noop` entry. One node, term 1, indexes from 1.
 */

import type { Entry } from '../../core/types.js';
import type { KvBackend } from '../../storage/types.js';
import { encodeCommand } from '../codec.js';
import { createKvStateMachine, type KvStateMachine } from '../state-machine.js';
import type { Command, CommandResult } from '../types.js';

export interface TestMachine {
  readonly sm: KvStateMachine;
  readonly kv: KvBackend;
  /** Applies `command` as the next entry; its result. */
  run(command: Command): CommandResult;
  /** Applies a no-op entry (a version that changes no key). */
  noop(): void;
}

export function testMachine(kv: KvBackend): TestMachine {
  const sm = createKvStateMachine(kv, { dedupClientsMax: 100 });
  let index = 0;
  return {
    sm,
    kv,
    run: (command) => {
      const e: Entry = { term: 1, index: ++index, kind: 'normal', data: encodeCommand(command) };
      const r = sm.apply([e]).get(e.index);
      if (r === undefined) throw new Error(`entry ${e.index} gave no result`);
      return r;
    },
    noop: () => void sm.apply([{ term: 1, index: ++index, kind: 'noop', data: new Uint8Array(0) }]),
  };
}
