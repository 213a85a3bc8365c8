import { defineConfig } from "vite";
import { VitePWA } from "vite-plugin-pwa";

// The service worker (Workbox, via vite-plugin-pwa) precaches the app shell so the app
// opens with no network after the first visit; the API and the sync socket are never cached.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  plugins: [
    VitePWA({
      registerType: "autoUpdate",
      injectRegister: false,
      includeAssets: ["icons/apple-touch-icon.png"],
      manifest: {
        name: "Tandem",
        short_name: "Tandem",
        description: "Plan projects together, online or off.",
        start_url: "/",
        scope: "/",
        display: "standalone",
        background_color: "#f5f5fb",
        theme_color: "#4f46e5",
        icons: [
          { src: "/icons/icon-192.png", sizes: "192x192", type: "image/png" },
          { src: "/icons/icon-512.png", sizes: "512x512", type: "image/png" },
          { src: "/icons/maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
        ],
      },
      workbox: {
        globPatterns: ["**/*.{js,css,html,png,webmanifest}"],
        navigateFallback: "/index.html",
        navigateFallbackDenylist: [/^\/api\//, /^\/sync\//, /^\/openapi\.json/, /^\/docs/, /^\/healthz/],
        cleanupOutdatedCaches: true,
        importScripts: ["/push-sw.js"],
      },
    }),
  ],
});
