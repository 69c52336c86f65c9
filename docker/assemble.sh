#!/bin/sh
# Lays out the runtime images' files from a built workspace (after `pnpm
# install`, `pnpm build` and `pnpm build:runner`): OUT/<target>/ is copied to
# / of the image of that target. Used by docker/Dockerfile, and by
# tests/integration/packaging.test.ts, which runs the result without Docker.
#
#   sh docker/assemble.sh OUT
set -eu
out=${1:?usage: assemble.sh OUT}
cd "$(dirname "$0")/.."
rm -rf "$out"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The one path a glob matches: two would mean two installed versions of a
# package, and copying the wrong one's files would break the image quietly.
only() {
  if [ $# -ne 1 ] || [ ! -e "$1" ]; then echo "assemble.sh: expected one match, found: $*" >&2; exit 1; fi
  printf '%s\n' "$1"
}

# The Prisma client is generated (by `pnpm build`) beside @prisma/client inside
# node_modules, which `pnpm deploy` does not carry over: copy it in.
generated=$(only node_modules/.pnpm/@prisma+client@*/node_modules/.prisma)
[ -d "$generated/client" ] || { echo "assemble.sh: no generated Prisma client; run pnpm build first" >&2; exit 1; }

deploy() { # package name, destination
  pnpm --filter "$1" deploy --prod --legacy "$2" >/dev/null
  rm -rf "$2/src" "$2/tsconfig.json" "$2/tsconfig.tsbuildinfo"
  client_dir=$(only "$2"/node_modules/.pnpm/@prisma+client@*/node_modules)
  cp -r "$generated" "$client_dir/"
}

# gateway: same relative layout as the repository, since it serves ../dashboard/web/dist.
deploy @runbridge/gateway "$out/gateway/srv/apps/gateway"
mkdir -p "$out/gateway/srv/apps/dashboard/web"
cp -r apps/dashboard/web/dist "$out/gateway/srv/apps/dashboard/web/dist"

deploy @runbridge/dispatcher "$out/dispatcher/srv/apps/dispatcher"

# migrate: the Prisma CLI (a dependency of @prisma/client) with the schema and
# migrations, plus the admin CLI (bootstrap).
deploy @runbridge/db "$out/migrate/srv/migrate"
cp -r prisma prisma.config.ts "$out/migrate/srv/migrate/"
prisma_cli=$(cd "$out/migrate/srv/migrate/node_modules" && only .pnpm/prisma@*/node_modules/prisma)
ln -s "$prisma_cli" "$out/migrate/srv/migrate/node_modules/prisma"
deploy @runbridge/cli "$out/migrate/srv/cli"

# runner: the single bundled file.
mkdir -p "$out/runner/opt/runbridge"
cp apps/runner/dist/bundle/runbridge-runner.cjs "$out/runner/opt/runbridge/runbridge-runner.cjs"
