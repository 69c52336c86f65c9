import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import path from "node:path";
import { dispatcherEnvSchema } from "../../apps/dispatcher/src/config";
import { gatewayEnvSchema } from "../../apps/gateway/src/config";
import { runnerEnvSchema } from "../../apps/runner/src/config";

/**
 * docs/operations.md's configuration reference and the env schemas the
 * processes validate at start must list the same variables, for the same
 * services, with the same defaults. Read at test time, so a variable added to
 * a schema without its row (or the other way round) fails here.
 */
const SCHEMAS: Record<string, { describe(): unknown }> = { gateway: gatewayEnvSchema, dispatcher: dispatcherEnvSchema, runner: runnerEnvSchema };

interface KeyInfo {
  services: string[];
  defaults: unknown[];
  required: boolean;
}

function fromSchemas(): Map<string, KeyInfo> {
  const keys = new Map<string, KeyInfo>();
  for (const [service, schema] of Object.entries(SCHEMAS)) {
    const described = schema.describe() as { keys: Record<string, { flags?: { default?: unknown; presence?: string } }> };
    for (const [name, d] of Object.entries(described.keys)) {
      const info = keys.get(name) ?? { services: [], defaults: [], required: false };
      info.services.push(service);
      info.defaults.push(d.flags?.default);
      info.required ||= d.flags?.presence === "required";
      keys.set(name, info);
    }
  }
  return keys;
}

interface Row {
  services: string[];
  defaultCell: string;
  meaning: string;
}

function fromDocs(): Map<string, Row> {
  const text = readFileSync(path.resolve(__dirname, "../../docs/operations.md"), "utf8");
  const section = text.split(/^## Configuration reference$/m)[1]?.split(/^## /m)[0];
  if (!section) throw new Error('docs/operations.md has no "## Configuration reference" section');
  const rows = new Map<string, Row>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[1] ?? "")?.[1];
    if (!name) continue;
    if (rows.has(name)) throw new Error(`${name} has two rows in the configuration reference`);
    rows.set(name, { services: (cells[2] ?? "").split(",").map((s) => s.trim()).filter(Boolean), defaultCell: cells[3] ?? "", meaning: cells[4] ?? "" });
  }
  return rows;
}

describe("configuration reference in docs/operations.md", () => {
  const schemaKeys = fromSchemas();
  const docRows = fromDocs();

  it("documents every variable the services read, and only those", () => {
    const inSchemasOnly = [...schemaKeys.keys()].filter((k) => !docRows.has(k)).sort();
    const inDocsOnly = [...docRows.keys()].filter((k) => !schemaKeys.has(k)).sort();
    expect({ undocumented: inSchemasOnly, notInAnySchema: inDocsOnly }).toEqual({ undocumented: [], notInAnySchema: [] });
  });

  it("names, for each variable, exactly the services whose schema has it", () => {
    const mismatched = [...docRows].filter(([k, row]) => schemaKeys.has(k) && [...row.services].sort().join(",") !== [...schemaKeys.get(k)!.services].sort().join(","));
    expect(mismatched.map(([k, row]) => `${k}: docs say ${row.services.join(", ")}, schemas say ${schemaKeys.get(k)!.services.join(", ")}`)).toEqual([]);
  });

  it("states each variable's default as the schemas define it", () => {
    const problems: string[] = [];
    for (const [name, row] of docRows) {
      const info = schemaKeys.get(name);
      if (!info) continue;
      const cell = row.defaultCell;
      if (info.required) {
        if (cell !== "*required*") problems.push(`${name} is required, docs say ${cell}`);
        continue;
      }
      const distinct = [...new Set(info.defaults.map((d) => JSON.stringify(d)))];
      if (distinct.length !== 1) {
        problems.push(`${name} has different defaults per service (${distinct.join(" / ")}); give each its own variable or one default`);
        continue;
      }
      const value = info.defaults[0];
      if (value === "") {
        if (cell !== "*empty*") problems.push(`${name} defaults to the empty string, docs say ${cell}`);
      } else if (typeof value === "function" || (typeof value === "string" && (value.includes(hostname()) || value.startsWith(homedir())))) {
        // Computed on the machine (host name, home directory): described in words, in italics.
        if (!/^\*[^*]+\*$/.test(cell)) problems.push(`${name} has a machine-dependent default (${value}), docs should describe it in italics, say ${cell}`);
      } else if (cell !== `\`${String(value)}\``) {
        problems.push(`${name} defaults to ${JSON.stringify(value)}, docs say ${cell}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("explains every variable", () => {
    const unexplained = [...docRows].filter(([, row]) => row.meaning.length < 15).map(([k]) => k);
    expect(unexplained).toEqual([]);
  });
});
