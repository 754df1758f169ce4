# syntax=docker/dockerfile:1
# flashsale: one image for `flashsale serve` (API) and `flashsale consume` (order consumer).
#   docker compose -p flash-purchase up -d --build      (see deploy/DOCKER.md)
#
# Stage 1 builds with the README's own steps (scripts/setup_deps.sh --build-only, then the
# release preset); stage 2 holds only the binary, its runtime libraries and the Swagger UI assets.

FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# The source tree must sit at this same path in the runtime stage's view of the assets: the
# build compiles FLASHSALE_SWAGGER_UI_DIR in as the absolute path <WORKDIR>/build/release/swagger-ui.
WORKDIR /opt/flashsale
# setup_deps.sh first, alone, so the apt layer is cached across source edits.
COPY scripts/setup_deps.sh scripts/setup_deps.sh
RUN scripts/setup_deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
# Tests and micro-benchmarks are off: they need GoogleTest / Google Benchmark, which are
# test packages, and the image only needs the server. swagger-ui-dist is fetched by npm here.
RUN cmake --preset release -DFLASHSALE_BUILD_TESTS=OFF -DFLASHSALE_BUILD_BENCHMARKS=OFF \
 && cmake --build --preset release --target flashsale \
 && test -f build/release/swagger-ui/swagger-ui-bundle.js \
 && build/release/flashsale --version \
 && strip --strip-debug -o /opt/flashsale/flashsale build/release/flashsale

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries of what the build links (ldd build/release/flashsale): Boost.JSON, spdlog,
# fmt, SQLite, OpenSSL's libcrypto (HMAC of payments and cancel tokens); hiredis, librdkafka (C and C++), libpq for distributed mode. curl is for the
# health check (GET /readyz); ca-certificates for TLS to managed Redis/Kafka/PostgreSQL.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libboost-json1.81.0 libboost-container1.81.0 libspdlog1.10 libfmt9 libsqlite3-0 \
      libhiredis0.14 librdkafka1 librdkafka++1 libpq5 libssl3 \
      curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/flashsale/flashsale /usr/local/bin/flashsale
# Same absolute path as in the build stage: the binary reads the assets of GET /docs from the
# FLASHSALE_SWAGGER_UI_DIR compiled into it (there is no flag or env for it).
COPY --from=build /opt/flashsale/build/release/swagger-ui /opt/flashsale/build/release/swagger-ui
# Fails the image build if a library the binary links is missing here.
RUN if ldd /usr/local/bin/flashsale | grep 'not found'; then exit 1; fi \
 && flashsale --version
RUN groupadd --system flashsale \
 && useradd --system --gid flashsale --home-dir /var/lib/flashsale --shell /usr/sbin/nologin flashsale \
 && mkdir -p /var/lib/flashsale/data /var/lib/flashsale/logs \
 && chown -R flashsale:flashsale /var/lib/flashsale
# data/ (embedded mode's SQLite file) and logs/ are relative to the working directory.
WORKDIR /var/lib/flashsale
USER flashsale
ENV HOST=0.0.0.0 PORT=8000 LOG_DIR=/var/lib/flashsale/logs
EXPOSE 8000
ENTRYPOINT ["flashsale"]
CMD ["serve"]
