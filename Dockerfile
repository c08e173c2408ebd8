# Inferflow worker image. The TypeScript sources run through tsx; no build step.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
ENV INFERFLOW_DATA_DIR=/app/.data
CMD ["node", "bin/inferflow.js", "worker"]
