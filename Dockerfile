# One image per service: docker build --build-arg SERVICE=loyalty -t rapport-loyalty:0.1.0 .
FROM rust:1.95-bookworm AS build
ARG SERVICE=loyalty
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rapport-${SERVICE}

FROM debian:bookworm-slim
ARG SERVICE=loyalty
RUN useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin rapport
COPY --from=build /src/target/release/rapport-${SERVICE} /usr/local/bin/rapport-service
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/rapport-service"]
