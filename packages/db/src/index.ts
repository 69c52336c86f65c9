export * from "./client";
export * from "./operation-store";
