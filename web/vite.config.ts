// Vite builds the app into the directory bear-api's build script names (`--outDir`); the
// files are embedded in the binary. Everything is bundled from npm: no CDN, no remote font.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// `BEAR_DEV_API=http://127.0.0.1:8787 npx vite preview` serves a build with the API proxied
// from a running bear-server: the app can be tried without rebuilding the binary.
const api = process.env.BEAR_DEV_API;
const proxy = api ? { "/api": { target: api, changeOrigin: true }, "/v1": { target: api, changeOrigin: true } } : undefined;

export default defineConfig({
  plugins: [preact()],
  preview: { port: 4173, strictPort: true, proxy },
  base: "/",
  build: {
    target: "es2022",
    // Small files stay files: the CSP forbids data: scripts and styles are external anyway.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
});
