# Inferflow image: the compiled JavaScript. `npm ci` builds dist/ (tsc and the prebuilt
# workflow bundle) through the `prepare` script, then the build tools are pruned.
FROM node:20-bookworm-slim
WORKDIR /app
COPY . .
# npm before 11.16 ignores package.json's allowScripts, which denies onnxruntime-node's CUDA download.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund && npm prune --omit=dev && npm cache clean --force
ENV INFERFLOW_DATA_DIR=/app/.data
CMD ["node", "bin/inferflow.js", "worker"]
