#!/bin/sh
# Pin (or re-pin) every third-party image to the digest its tag points at today:
#   scripts/pin_images.sh            rewrite the files in place
#   scripts/pin_images.sh --check    print what would change, exit 1 if anything would
# Images: the Dockerfile's base image, and the public images of docker-compose.yml and deploy/k8s. Each is
# written `name:tag@sha256:<digest>`: the tag says what it is, the digest what is pulled. Needs registry
# access and `crane` (github.com/google/go-containerregistry) or `docker buildx imagetools`. The digest is
# that of the multi-platform index, so amd64 and arm64 hosts pull their own image from the same pin.
# Review the diff (release notes of the new tags) before committing it.
set -eu
cd "$(dirname "$0")/.."
FILES="Dockerfile docker-compose.yml deploy/k8s/base/redis.yaml"
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

digest() {
  if command -v crane >/dev/null 2>&1; then
    crane digest "$1"
  else
    docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' | sed -n 's/.*"digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' | head -n 1
  fi
}

changed=0
# name:tag, optionally already @sha256:..., after FROM or image:
for ref in $(grep -hoE '(FROM|image:) +[a-z0-9./-]+:[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?' $FILES | awk '{print $2}' | sort -u); do
  tagged=${ref%@*}
  new="$tagged@$(digest "$tagged")"
  if [ "$new" != "$ref" ]; then
    changed=1
    echo "$ref -> $new"
    [ "$CHECK" = 1 ] || for f in $FILES; do sed -i "s|$ref|$new|g" "$f"; done
  fi
done
[ "$CHECK" = 1 ] && exit "$changed"
exit 0
