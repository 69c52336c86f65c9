/** Where the Automation API is mounted. */
export const AUTOMATION_BASE = "/api/automation/v1";

/** Its public description: the one path under the base that needs no key. */
export const OPENAPI_PATH = `${AUTOMATION_BASE}/openapi.json`;
