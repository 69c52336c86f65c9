export * from "./client";
export * from "./operation-store";
export * from "./retention";
export * from "./env-allowlist";
export * from "./pool-metric";
