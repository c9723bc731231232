// __PLUGIN_NAME__: starts the HTTP service. Environment:
//   SWITCHYARD_SIGNING_SECRET  the plugin's signing secret (whsec_...); read from ./.env if unset
//   HOST (default 127.0.0.1), PORT (default 3000)

import { readFileSync } from "node:fs";
import { createHttpServer, createPlugin, loadManifest, PLUGIN_ID } from "./plugin.js";

// Simple KEY=VALUE lines and # comments; a variable already set in the environment wins.
function loadDotEnv(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err.code === "ENOENT") return;
    throw err;
  }
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const eq = line.indexOf("=");
    if (line === "" || line.startsWith("#") || eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    if (process.env[key] === undefined) process.env[key] = value;
  }
}

function fail(message) {
  console.error(message);
  process.exit(2);
}

if (!process.env.SWITCHYARD_SIGNING_SECRET) loadDotEnv(".env");
const secret = process.env.SWITCHYARD_SIGNING_SECRET;
if (!secret) {
  fail("set SWITCHYARD_SIGNING_SECRET (the plugin's signing secret, whsec_...; switchyardctl dev passes it)");
}
if (!secret.startsWith("whsec_")) fail('SWITCHYARD_SIGNING_SECRET must start with "whsec_"');

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail("PORT must be a port number");

let plugin;
try {
  plugin = createPlugin({ secret, manifest: loadManifest() });
} catch (err) {
  // Never print the secret itself.
  fail(`cannot start: ${err.message} (is SWITCHYARD_SIGNING_SECRET whsec_<base64>? is manifest.json valid?)`);
}

const server = createHttpServer(plugin);
server.listen(port, host, () => {
  console.log(`${PLUGIN_ID} listening on http://${host}:${server.address().port}`);
});

// Stop on Ctrl-C and on `docker stop` (as PID 1 in a container, node ignores SIGTERM unless handled).
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
