# One image with every Emporium executable: emporium-api, the four workers and the
# `emporium` CLI (migrate, seed, user create, dlq). Configuration comes from the
# environment at run time; nothing secret is baked in.
#
#   docker build -t emporium .
#   docker run --rm emporium emporium --help

ARG SWIFT_VERSION=6.3
FROM swift:${SWIFT_VERSION}-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq-dev librabbitmq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# The API's contract (Resources/openapi.json) is a SwiftPM resource bundle, looked up next to
# the executable: it is copied with the binaries.
RUN swift build -c release --static-swift-stdlib \
 && mkdir -p /out \
 && for exe in emporium emporium-api emporium-stock-worker emporium-payment-worker emporium-order-worker emporium-notification-worker; do \
      cp "$(swift build -c release --show-bin-path)/$exe" /out/; \
    done \
 && cp -r "$(swift build -c release --show-bin-path)/Emporium_API.resources" /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq5 librabbitmq4 ca-certificates tzdata curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin emporium
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
COPY sql ./sql
ENV MIGRATIONS_DIR=/app/sql \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8081
USER emporium
EXPOSE 8080 8081
# The API by default; compose and Kubernetes pick the executable per service.
CMD ["emporium-api"]
