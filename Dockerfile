# toolgate: one binary on a distroless base, running as non-root.
#
#   docker build -t toolgate --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -p 8080:8080 -v $PWD/toolgate.yaml:/etc/toolgate/toolgate.yaml:ro toolgate
#
# The Postgres passthrough classifies statements with the real PostgreSQL
# parser (pganalyze/pg_query_go, cgo), so the binary links libc: it is built
# with CGO_ENABLED=1 and runs on distroless/base, which has glibc.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/toolgate ./cmd/toolgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/toolgate /usr/local/bin/toolgate
# A writable home for the default SQLite store (store.path ./data/toolgate.db
# relative to the config); mount a volume here to keep it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/toolgate
USER 65532:65532
WORKDIR /var/lib/toolgate
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/toolgate"]
CMD ["serve", "--config", "/etc/toolgate/toolgate.yaml"]
