# syntax=docker/dockerfile:1
# The hub as a static binary on a distroless, non-root base. The build
# stage runs what `make build` runs.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/hub ./cmd/hub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hub /hub
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/hub"]
