# Multi-stage build: a locked release build, then a small non-root runtime image.
#   docker build -t registry.example.com/rsg:0.1.0 . && docker push registry.example.com/rsg:0.1.0
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin rsg

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rsg /usr/local/bin/rsg
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/usr/local/bin/rsg"]
CMD ["run"]
