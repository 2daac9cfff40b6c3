# quorumkv node image: a multi-stage build, a small runtime image without build tools,
# running as the unprivileged `node` user with its data in the /data volume. Every node flag
# is also an environment variable (QKV_ + the flag in upper snake case; see
# `quorumkv node --help`), which is how deploy/compose.yaml and deploy/kubernetes/ set them.
#
#   docker build -t quorumkv .
#   docker run -e QKV_ID=n1 -e QKV_PEERS=n1=127.0.0.1:7101 -p 7001:7001 quorumkv

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Dependency install scripts are reviewed and off (package.json allowScripts); lmdb and
# msgpackr-extract load prebuilt binaries.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm pack --ignore-scripts && mv quorumkv-*.tgz /quorumkv.tgz

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    QKV_DATA_DIR=/data \
    QKV_LISTEN_HTTP=0.0.0.0:7001 \
    QKV_LISTEN_PEER=0.0.0.0:7101 \
    QKV_LISTEN_GRPC=0.0.0.0:7201
WORKDIR /app
COPY --from=build /quorumkv.tgz /tmp/quorumkv.tgz
COPY package-lock.json ./
# The packed product (no tests), with its runtime dependencies only.
RUN tar -xzf /tmp/quorumkv.tgz --strip-components=1 -C /app \
 && npm ci --omit=dev --ignore-scripts \
 && npm cache clean --force \
 && rm /tmp/quorumkv.tgz \
 && mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 7001 7101 7201
# Liveness: the process answers. Readiness (knows a leader, caught up) is GET /ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:7001/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--initial-old-space-size=128", "/app/dist/cli/main.js", "node"]
