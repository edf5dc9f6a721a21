import { defineConfig } from "vite";

// The build is embedded in the `triad` binary (ui/build.rs); `TRIAD_UI_OUT` is where
// the Rust build script wants it.
export default defineConfig({
  base: "/",
  build: {
    outDir: process.env.TRIAD_UI_OUT ?? "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
});
