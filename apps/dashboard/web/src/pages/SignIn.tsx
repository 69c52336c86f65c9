import { type FormEvent, useState } from "react";
import { signIn } from "../api";
import { ErrorNote } from "../components/bits";
import type { Session } from "../types";

/** Trades a general API key for an HttpOnly session cookie; the key is dropped from memory right after. */
export function SignIn(props: { onSignedIn: (s: Session) => void; notice?: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await signIn(key.trim());
      setKey("");
      props.onSignedIn(s);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="center-page">
      <form className="card signin" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to runbridge</h1>
        <p className="muted">
          Use a general API key (<code>rbk_…</code>). Create the first one with <code>pnpm runbridge bootstrap --tenant NAME</code>.
        </p>
        {props.notice ? (
          <p className="notice" role="status">
            {props.notice}
          </p>
        ) : null}
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          name="api_key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="rbk_…"
          autoFocus
        />
        <ErrorNote message={error} />
        <button className="btn btn-primary" type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="muted small">The key is exchanged for a secure, HttpOnly session cookie; it is not stored in this browser.</p>
      </form>
    </main>
  );
}
