# The control plane image: `fracta` (serve, CLI) on a slim Debian. Build from the repository root:
#   docker build -f deployment/docker/controlplane.Dockerfile -t fracta/controlplane:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fracta

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --home-dir /var/lib/fracta fracta
COPY --from=build /src/target/release/fracta /usr/local/bin/fracta
USER 10001
WORKDIR /var/lib/fracta
ENTRYPOINT ["fracta"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
