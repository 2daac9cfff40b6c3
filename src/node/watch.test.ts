import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvStateMachine } from '../kv/state-machine.js';
import { testMachine } from '../kv/testing/machine.js';
import type { Command } from '../kv/types.js';
import { createMemoryStorage } from '../storage/memory.js';
import { WatchHub, type WatchEnd, type WatchHubOptions, type WatchMessage, type WatchSink } from './watch.js';

const options: WatchHubOptions = { bufferBytesMax: 1000, progressTicks: 10, watchersMax: 4, pageVersions: 2 };

function setup(): { sm: KvStateMachine; hub: WatchHub; run(command: Command): void } {
  const machine = testMachine(createMemoryStorage({ initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' }, snapshotBytesMax: 1 << 20, flushMode: 'manual' }).kv);
  const hub = new WatchHub(machine.sm, options);
  return {
    sm: machine.sm,
    hub,
    run: (command) => {
      machine.run(command);
      hub.applied();
    },
  };
}

/** A consumer that reads nothing until told: `buffered` is what it left unread. */
class TestSink implements WatchSink {
  readonly messages: WatchMessage[] = [];
  ended: WatchEnd | null | undefined = undefined;
  buffered = 0;
  bytesPerMessage = 10;
  private drain: (() => void) | null = null;

  send(message: WatchMessage): number {
    this.messages.push(message);
    this.buffered += this.bytesPerMessage;
    return this.buffered;
  }
  onDrain(fn: () => void): void {
    this.drain = fn;
  }
  end(reason: WatchEnd | null): void {
    this.ended = reason;
  }
  /** The consumer reads everything. */
  read(): void {
    this.buffered = 0;
    const fn = this.drain;
    this.drain = null;
    fn?.();
  }
  versions(): number[] {
    return this.messages.flatMap((m) => (m.kind === 'changes' ? [m.version] : []));
  }
}

test('a watcher from a past version gets every change under its prefix from that version on, once, in order, then the new ones', () => {
  const { hub, run } = setup();
  for (let i = 1; i <= 6; i++) run({ op: 'put', key: i % 2 === 0 ? `a/${i}` : `b/${i}`, value: String(i) });
  const sink = new TestSink();
  assert.notEqual(hub.open({ prefix: 'a/', fromVersion: 2, prevValue: false }, sink), null);
  assert.deepEqual(sink.versions(), [2, 4, 6]);
  run({ op: 'put', key: 'a/7', value: '7' }); // 7
  run({ op: 'put', key: 'b/8', value: '8' }); // 8
  run({ op: 'delete', key: 'a/2' }); // 9
  assert.deepEqual(sink.versions(), [2, 4, 6, 7, 9]);
  const last = sink.messages.at(-1);
  assert.ok(last?.kind === 'changes');
  assert.deepEqual(last.changes, [{ key: 'a/2', value: undefined, prev: undefined }], 'no previous value unless asked');
});

test('with prevValue each change carries the record it replaced', () => {
  const { hub, run } = setup();
  run({ op: 'put', key: 'k', value: 'old' });
  const sink = new TestSink();
  hub.open({ prefix: '', fromVersion: 2, prevValue: true }, sink);
  run({ op: 'put', key: 'k', value: 'new' });
  assert.deepEqual(sink.messages, [{ kind: 'changes', version: 2, changes: [{ key: 'k', value: 'new', prev: { value: 'old', version: 1 } }] }]);
});

test('a live watcher whose consumer leaves more than bufferBytesMax unread is cancelled with slow_consumer and resumes from its last version without a loss', () => {
  const { hub, run } = setup();
  const slow = new TestSink();
  slow.bytesPerMessage = 400;
  hub.open({ prefix: '', fromVersion: 1, prevValue: false }, slow);
  for (let i = 1; i <= 5; i++) run({ op: 'put', key: `k${i}`, value: 'v' });
  assert.deepEqual(slow.ended, { error: 'slow_consumer', lastVersion: 3 });
  assert.deepEqual(slow.versions(), [1, 2, 3]);
  const again = new TestSink();
  hub.open({ prefix: '', fromVersion: 4, prevValue: false }, again);
  assert.deepEqual(again.versions(), [4, 5]);
  assert.equal(hub.size, 1);
});

test('a watcher catching up pauses while its consumer is full instead of being cancelled, and goes on when it drains', () => {
  const { hub, run } = setup();
  for (let i = 1; i <= 6; i++) run({ op: 'put', key: `k${i}`, value: 'v' });
  const sink = new TestSink();
  sink.bytesPerMessage = 300;
  hub.open({ prefix: '', fromVersion: 1, prevValue: false }, sink);
  assert.deepEqual(sink.versions(), [1, 2], 'paused past half the buffer');
  run({ op: 'put', key: 'k7', value: 'v' });
  assert.deepEqual(sink.versions(), [1, 2], 'a paused watcher is not fed');
  sink.read();
  assert.deepEqual(sink.versions(), [1, 2, 3, 4]);
  sink.read();
  sink.read();
  assert.deepEqual(sink.versions(), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(sink.ended, undefined);
});

test('a fromVersion below the history kept ends the watch with compacted and the oldest version left', () => {
  const { hub, run } = setup();
  for (let i = 1; i <= 5; i++) run({ op: 'put', key: 'k', value: String(i) });
  run({ op: 'compact', beforeVersion: 4 });
  const sink = new TestSink();
  hub.open({ prefix: '', fromVersion: 3, prevValue: false }, sink);
  assert.deepEqual(sink.ended, { error: 'compacted', oldestVersion: 4 });
  assert.equal(hub.size, 0);
  const ok = new TestSink();
  hub.open({ prefix: '', fromVersion: 4, prevValue: false }, ok);
  assert.deepEqual(ok.versions(), [4, 5]);
});

test('a quiet live watcher gets a progress message with the version it is up to, from the hub\'s ticks', () => {
  const { hub, run } = setup();
  const sink = new TestSink();
  hub.open({ prefix: 'x/', fromVersion: 1, prevValue: false }, sink);
  run({ op: 'put', key: 'y', value: 'v' });
  for (let i = 0; i < options.progressTicks; i++) hub.tick();
  assert.deepEqual(sink.messages, [{ kind: 'progress', version: 1 }]);
});

test('the hub refuses watchers beyond watchersMax and ends every watcher when the node stops', () => {
  const { hub } = setup();
  const sinks = Array.from({ length: options.watchersMax + 1 }, () => new TestSink());
  const ids = sinks.map((s) => hub.open({ prefix: '', fromVersion: 1, prevValue: false }, s));
  assert.equal(ids.filter((id) => id === null).length, 1);
  hub.stop();
  assert.ok(sinks.slice(0, options.watchersMax).every((s) => s.ended !== undefined && s.ended?.error === 'shutting_down'));
});

test('planted bug watchSkipsFromVersion: the change at fromVersion is missing', () => {
  const { hub, run } = setup();
  run({ op: 'put', key: 'k', value: '1' });
  hub.skipFromVersion = true;
  const sink = new TestSink();
  hub.open({ prefix: '', fromVersion: 1, prevValue: false }, sink);
  assert.deepEqual(sink.versions(), []);
});

test('a snapshot that carries the node past versions its history no longer holds ends live watchers with compacted, never a silent gap', () => {
  let applied = 5;
  let compacted = 1;
  const source = {
    appliedIndex: () => applied,
    compactedBelow: () => compacted,
    changes: (from: number) => (from <= applied ? [{ version: Math.max(from, compacted), changes: [{ key: 'k', value: 'v', prev: undefined }] }] : []),
  };
  const hub = new WatchHub(source, options);
  const sink = new TestSink();
  hub.open({ prefix: '', fromVersion: null, prevValue: false }, sink);
  // The install: applied jumps from 5 to 40, and the history kept starts at 30.
  applied = 40;
  compacted = 30;
  hub.tick();
  assert.deepEqual(sink.ended, { error: 'compacted', oldestVersion: 30 });
  assert.deepEqual(sink.versions(), []);
});
