import { defineConfig } from "vite";

// Served by the gateway under /dashboard/. `pnpm --filter @runbridge/dashboard dev`
// proxies the API to a gateway on localhost:8080 for hot reloading.
export default defineConfig({
  base: "/dashboard/",
  esbuild: { jsx: "automatic" },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, target: "es2022" },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/dashboard/session": "http://127.0.0.1:8080",
      "/dashboard/api": "http://127.0.0.1:8080",
    },
  },
});
