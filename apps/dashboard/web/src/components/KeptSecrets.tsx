import { OneTimeSecret } from "./CopyButton";
import type { ShownSecret } from "./one-time-store";

/** One-time secrets whose page went away with the session, still on screen until the user says they are copied. */
export function KeptSecrets(props: { secrets: ShownSecret[]; onDismiss: () => void }) {
  if (props.secrets.length === 0) return null;
  return (
    <section className="kept-secrets stack" aria-labelledby="kept-secrets-heading">
      <h2 id="kept-secrets-heading">Copy before you go on</h2>
      <p>Your session ended while {props.secrets.length === 1 ? "this secret was" : "these secrets were"} on screen. Nothing else keeps {props.secrets.length === 1 ? "it" : "them"}.</p>
      {props.secrets.map((s) => (
        <OneTimeSecret key={s.value} label={s.label} value={s.value} kept {...(s.testId ? { testId: s.testId } : {})} />
      ))}
      <button type="button" className="btn" onClick={props.onDismiss}>
        I have copied {props.secrets.length === 1 ? "it" : "them"}
      </button>
    </section>
  );
}
