// Builds the console into dist/: one script and one stylesheet bundled by esbuild from
// src/main.js (with Uppy's modules and styles from node_modules), index.html and config.json.
// No CDN at run time: dist/ is everything the browser loads. `npm run build`.
import { build } from "esbuild";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const dist = `${here}dist`;
// Built beside dist/ and swapped in only once complete: a failed build leaves the last
// good console served (Depot and the tests' nginx read dist/ while it builds).
const next = `${here}dist.next`;

await rm(next, { recursive: true, force: true });
await mkdir(next, { recursive: true });
await build({
  entryPoints: { console: `${here}src/main.js` },
  outdir: next,
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: ["es2022"],
  legalComments: "external",
  logLevel: "warning",
});
// config.json names the API's address; "" is the console's own origin. Where the console is
// hosted on another origin than the API, replace it in dist/ with {"api": "https://..."}.
for (const name of ["index.html", "config.json"]) await copyFile(`${here}src/${name}`, `${next}/${name}`);
await rm(dist, { recursive: true, force: true });
await rename(next, dist);
console.log(`console built in ${dist}`);
