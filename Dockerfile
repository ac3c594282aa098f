# One image for Roster's three services: `ingress`, `worker` (also `worker migrate`), `mailer`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingress -p worker -p mailer \
    && mkdir -p /out \
    && cp target/release/ingress target/release/worker target/release/mailer /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 roster
COPY --from=build /out/ /usr/local/bin/
USER roster
ENV LOG_FORMAT=json RUST_LOG=info
EXPOSE 8080 9090 9091
CMD ["ingress"]
