# Agent image with all three agent CLIs (claude, codex, opencode), at the versions the tests run (package.json; a test checks
# that these pins agree with it). Build from the repository root:
#   docker build -f deployment/docker/agent.Dockerfile -t fracta/agent:0.1.0 .
# Besides the CLI(s) it has sh, bash, git, curl and jq (commands a Claude apiKeyHelper may call;
# see DEFAULT_IMAGE_COMMANDS in crates/kube/src/render.rs), and node (the OpenCode health probe).
FROM node:20-bookworm-slim
ARG CLAUDE_CODE_VERSION=2.1.197
ARG CODEX_VERSION=0.169.0
ARG OPENCODE_VERSION=1.18.33
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git curl jq bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g --no-audit --no-fund "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" "@openai/codex@${CODEX_VERSION}" "opencode-ai@${OPENCODE_VERSION}" \
 && npm cache clean --force \
 && useradd --uid 10001 --create-home --home-dir /home/agent agent \
 && mkdir -p /workspace /fracta && chown agent:agent /workspace /fracta
USER 10001
ENV HOME=/home/agent
WORKDIR /workspace
