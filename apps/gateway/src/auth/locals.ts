import type { Response } from "express";
import type { AutomationKey } from "@runbridge/db";

export interface AutomationAuth {
  kind: "automation";
  tenantId: string;
  key: AutomationKey;
  clientIp: string;
}

export interface ManagementAuth {
  kind: "management";
  tenantId: string;
  apiKeyId: string;
  clientIp: string;
  /** Through the API with the key itself, or a dashboard session signed in with it. */
  via: "api" | "dashboard";
}

export function automationAuth(res: Response): AutomationAuth {
  const auth = res.locals.auth as AutomationAuth | undefined;
  if (auth?.kind !== "automation") throw new Error("automation auth middleware did not run");
  return auth;
}

export function managementAuth(res: Response): ManagementAuth {
  const auth = res.locals.auth as ManagementAuth | undefined;
  if (auth?.kind !== "management") throw new Error("management auth middleware did not run");
  return auth;
}
