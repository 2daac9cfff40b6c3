/**
 * A gRPC client for the API's tests that speaks the .proto through proto-loader (not the
 * generated code the server uses), so a test sees the wire as another language would, and
 * can send raw bytes a hostile client could.
 */
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Registry } from 'prom-client';
import { startGrpcServer } from '../grpc.js';
import type { GrpcServerOptions } from '../grpc.js';
import type { FakeKvNode } from '../fake-node.js';
import type { InputValidator } from '../validation.js';

export const limits = { messageBytesMax: 4096, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 };

const definition = protoLoader.loadSync(fileURLToPath(new URL('../../../proto/quorumkv.proto', import.meta.url)), {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
export const service = definition['quorumkv.v1.KV'] as protoLoader.ServiceDefinition;

export interface Reply {
  // Tests read fields of answers freely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly [field: string]: any;
}

export interface Failure {
  readonly code: number;
  readonly wire: string | undefined;
  readonly details: string;
  readonly body: Record<string, unknown>;
}

export class RawClient {
  readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  call(method: string, message: object): Promise<Reply> {
    const m = service[method] as protoLoader.MethodDefinition<object, object>;
    return this.send(m.path, m.requestSerialize(message), m.responseDeserialize);
  }

  /** Sends bytes as they are: what a buggy or hostile client could send. */
  raw(method: string, bytes: Buffer): Promise<Reply> {
    const m = service[method] as protoLoader.MethodDefinition<object, object>;
    return this.send(m.path, bytes, m.responseDeserialize);
  }

  async fails(method: string, message: object | Buffer): Promise<Failure> {
    try {
      const reply = Buffer.isBuffer(message) ? await this.raw(method, message) : await this.call(method, message);
      assert.fail(`${method} succeeded: ${JSON.stringify(reply)}`);
    } catch (error) {
      const e = error as grpc.ServiceError;
      if (typeof e.code !== 'number') throw error;
      const bodyBytes = e.metadata.get('qkv-error-body-bin')[0];
      return {
        code: e.code,
        wire: e.metadata.get('qkv-error')[0] as string | undefined,
        details: e.details,
        body: Buffer.isBuffer(bodyBytes) ? (JSON.parse(bodyBytes.toString('utf8')) as Record<string, unknown>) : {},
      };
    }
  }

  /** The node the answer (or the refusal) names in its `qkv-served-by` trailer. */
  servedBy(method: string, message: object): Promise<string | undefined> {
    const m = service[method] as protoLoader.MethodDefinition<object, object>;
    return new Promise((resolve) => {
      const call = this.client.makeUnaryRequest(m.path, (b: Buffer) => b, m.responseDeserialize, m.requestSerialize(message), new grpc.Metadata(), { deadline: Date.now() + 5_000 }, () => undefined);
      call.on('status', (status: grpc.StatusObject) => resolve(status.metadata.get('qkv-served-by')[0] as string | undefined));
    });
  }

  async stream(method: string, message: object): Promise<Reply[]> {
    const m = service[method] as protoLoader.MethodDefinition<object, object>;
    const stream = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, message, new grpc.Metadata(), {});
    const out: Reply[] = [];
    for await (const item of stream as AsyncIterable<Reply>) out.push(item);
    return out;
  }

  private send(path: string, bytes: Buffer, decode: (b: Buffer) => object): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(path, (b: Buffer) => b, decode, bytes, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error, reply) => {
        if (error !== null) reject(error);
        else resolve(reply as Reply);
      });
    });
  }
}

export async function startGrpc(t: TestContext, node: FakeKvNode, validate: InputValidator, overrides: Partial<GrpcServerOptions> = {}): Promise<RawClient> {
  const server = await startGrpcServer({ node, listen: { host: '127.0.0.1', port: 0 }, limits, validate, registry: new Registry(), ...overrides });
  const client = new RawClient(server.address);
  t.after(async () => {
    client.client.close();
    await server.close();
  });
  return client;
}

