#!/usr/bin/env bash
# Build the icebreaker FROM scratch image with no registry: compile a static
# binary on this host, then hand it to podman (or docker) as the only file of
# the build context.
#
#   deploy/docker/build-image.sh [TAG]     TAG defaults to icebreaker:VERSION
#
# ENGINE=docker to use docker instead of podman.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
engine=${ENGINE:-podman}
version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || true)
tag=${1:-icebreaker:${version:-dev}}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/Dockerfile"
mkdir "$ctx/data" # becomes /var/lib/icebreaker, owned by 65534
(cd "$root" && CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/icebreaker-net/icebreaker/internal/version.Stamp=$version" \
	-o "$ctx/icebreaker" ./cmd/icebreaker)
"$engine" build --pull=never -t "$tag" "$ctx"
echo "built $tag"
