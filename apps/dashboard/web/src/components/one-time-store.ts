import { useEffect } from "react";

/** A one-time secret on screen: what it takes to show it again. */
export interface ShownSecret {
  label: string;
  value: string;
  testId?: string;
}

/**
 * The one-time secrets on screen right now. A session that ends (expired,
 * signed out or switched in another tab, key revoked) unmounts the page that
 * shows one; App reads this first, so a secret the user has not copied yet
 * is kept on screen instead of being lost with the page.
 */
const shown = new Set<ShownSecret>();

/** Lists `secret` among those on screen while the calling component is mounted. */
export function useShownSecret(secret: ShownSecret | null): void {
  const { label, value, testId } = secret ?? { label: "", value: "" };
  useEffect(() => {
    if (!value) return;
    const entry = { label, value, ...(testId ? { testId } : {}) };
    shown.add(entry);
    return () => void shown.delete(entry);
  }, [label, value, testId]);
}

/** The secrets on screen now, in the order they appeared. */
export function secretsOnScreen(): ShownSecret[] {
  return [...shown];
}
