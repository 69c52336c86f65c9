export interface RebootRequest {
  baseUrl: string;
  providerServerId: string;
  token: string;
  timeoutMs: number;
}

export interface RebootOutcome {
  /** The provider's action id, for the operator to look up at the provider. */
  actionId: string | null;
}
