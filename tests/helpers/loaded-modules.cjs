// Preloaded with `node -r`: when the process exits, writes the path of every module it loaded
// (require's cache) to $LOADED_MODULES_FILE, for tests of what a command costs to start.
"use strict";
const { writeFileSync } = process.getBuiltinModule("node:fs");

process.on("exit", () => {
  if (process.env.LOADED_MODULES_FILE) writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify(Object.keys(require.cache)));
});
