// Builds the runner into one self-contained file that needs only Node.js 20+
// on the server: `pnpm build:runner` writes apps/runner/dist/bundle/runbridge-runner.cjs.
// The workspace packages are taken from their TypeScript sources, so this
// works without a prior `pnpm build`.
import { build } from "esbuild";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const outfile = path.join(root, "apps/runner/dist/bundle/runbridge-runner.cjs");
const { version } = JSON.parse(readFileSync(path.join(root, "apps/runner/package.json"), "utf8"));

/**
 * Our own packages' modules do nothing on import, so what the runner does not
 * use of them (and their imports, e.g. ioredis) is left out of the bundle.
 */
const workspaceSourcesArePure = {
  name: "workspace-sources-are-pure",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (!args.importer.startsWith(path.join(root, "packages"))) return undefined;
      const base = path.resolve(args.resolveDir, args.path);
      const file = [`${base}.ts`, path.join(base, "index.ts")].find((f) => existsSync(f));
      return file ? { path: file, sideEffects: false } : undefined;
    });
  },
};

mkdirSync(path.dirname(outfile), { recursive: true });
const result = await build({
  entryPoints: [path.join(root, "apps/runner/src/main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  minify: false,
  sourcemap: false,
  // Written below through a rename, so a reader (a test, install.sh) never sees half a file.
  write: false,
  alias: {
    "@runbridge/common": path.join(root, "packages/common/src/index.ts"),
    "@runbridge/contracts": path.join(root, "packages/contracts/src/index.ts"),
  },
  plugins: [workspaceSourcesArePure],
  // ws loads these native speed-ups only if present (inside try/catch); the runner does without.
  external: ["bufferutil", "utf-8-validate"],
  banner: { js: `#!/usr/bin/env node\n// runbridge runner ${version}: single-file build; run with Node.js 20 or later.` },
  logLevel: "warning",
});
const output = result.outputFiles.find((f) => f.path === outfile);
if (!output) throw new Error("esbuild produced no runner file");
const tmp = `${outfile}.${process.pid}.tmp`;
writeFileSync(tmp, output.contents, { mode: 0o755 });
chmodSync(tmp, 0o755);
renameSync(tmp, outfile);
process.stdout.write(`${path.relative(root, outfile)} (${Math.round(output.contents.length / 1024)} KiB)\n`);
