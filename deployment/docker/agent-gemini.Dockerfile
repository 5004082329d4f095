# Agent image with Gemini CLI only, at the version the tests run (package.json; a test checks
# that this pin agrees with it). Build from the repository root:
#   docker build -f deployment/docker/agent-gemini.Dockerfile -t fracta/agent-gemini:0.1.0 .
# Gemini CLI speaks ACP over its stdin/stdout (`gemini --acp`); until Fracta ships a relay that
# exposes that in a Pod, `fracta render`/`spawn` refuse ACP runtimes on Kubernetes, so this
# image is for running the CLI by hand and for the relay to come.
FROM node:20-bookworm-slim
ARG GEMINI_CLI_VERSION=0.61.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git curl jq \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g --no-audit --no-fund "@google/gemini-cli@${GEMINI_CLI_VERSION}" \
 && npm cache clean --force \
 && useradd --uid 10001 --create-home --home-dir /home/agent agent \
 && mkdir -p /workspace /fracta && chown agent:agent /workspace /fracta
USER 10001
ENV HOME=/home/agent
WORKDIR /workspace
