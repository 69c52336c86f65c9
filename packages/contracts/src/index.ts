export * from "./limits";
export * from "./operations";
export * from "./queues";
export * from "./redis-keys";
export * from "./socket";
export * from "./schemas/common";
export * from "./schemas/automation";
export * from "./schemas/management";
