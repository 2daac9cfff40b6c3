/**
 * The API tests' server: a real fastify server on 127.0.0.1 (port 0) in front of a
 * FakeKvNode, with small limits, closed when the test ends. Test-only (not packaged).
 */

import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { FakeKvNode } from '../fake-node.js';
import { startHttpServer, type HttpLimits, type HttpServerOptions } from '../http.js';

export const testKvLimits = { keyBytesMax: 64, valueBytesMax: 1024 };

export const testHttpLimits: HttpLimits = {
  bodyBytesMax: 4096,
  headerBytesMax: 8192,
  listLimitMax: 50,
  requestTimeoutMs: 2_000,
  leaderWaitMs: 200,
};

export interface TestServer {
  readonly url: string;
  readonly node: FakeKvNode;
  readonly registry: Registry;
  close(): Promise<void>;
}

/** What a test server is given beyond the defaults: the key and value checks (kv/limits.ts kvValidator(testKvLimits)), and any option. */
export type TestServerOptions = Pick<HttpServerOptions, 'validate'> & Partial<Omit<HttpServerOptions, 'node'>>;

/** Serves `node` until the test ends. */
export async function startTestServer(t: TestContext, node: FakeKvNode, overrides: TestServerOptions): Promise<TestServer> {
  const registry = overrides.registry ?? new Registry();
  const server = await startHttpServer({
    node,
    listen: { host: '127.0.0.1', port: 0 },
    limits: testHttpLimits,
    registry,
    logger: false,
    ...overrides,
  });
  t.after(() => server.close());
  return { url: server.url, node, registry, close: () => server.close() };
}

/** A leader serving at its own URL, as a real cluster member advertises it. */
export async function startTestLeader(t: TestContext, id: string, overrides: TestServerOptions): Promise<TestServer> {
  const node = new FakeKvNode({ id });
  const started = await startTestServer(t, node, overrides);
  node.setLeader({ id, http: started.url, grpc: null });
  return started;
}
