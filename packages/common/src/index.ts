export * from "./config";
export * from "./logger";
export * from "./redis";
export * from "./sealing";
export * from "./shutdown";
export * from "./tokens";
export * from "./readiness";
export * from "./env-files";
