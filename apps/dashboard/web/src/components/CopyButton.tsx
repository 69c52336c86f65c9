import { useState } from "react";
import { useShownSecret } from "./one-time-store";

/** Copies `value` to the clipboard and says so (also to screen readers). */
export function CopyButton(props: { value: string; label?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      setState("copied");
    } catch {
      // Clipboard needs a secure context; the value stays selectable by hand.
      setState("failed");
    }
    setTimeout(() => setState("idle"), 2500);
  };
  return (
    <button type="button" className="btn btn-small" onClick={() => void copy()}>
      {state === "copied" ? "Copied" : state === "failed" ? "Select and copy by hand" : (props.label ?? "Copy")}
      <span className="visually-hidden" aria-live="polite">
        {state === "copied" ? "Copied to clipboard" : state === "failed" ? "Could not copy: select the text and copy it by hand" : ""}
      </span>
    </button>
  );
}

/**
 * A secret shown exactly once, with a copy button and the warning that it will not be shown again.
 * It is listed as on screen (unless `kept`, when it is already App's copy of one kept past its session's end).
 */
export function OneTimeSecret(props: { label: string; value: string; testId?: string; kept?: boolean }) {
  useShownSecret(props.kept ? null : props);
  return (
    <div className="one-time" role="group" aria-label={props.label}>
      <p className="one-time-warning">
        <strong>Copy it now:</strong> this is the only time it is shown. runbridge keeps only a hash of it.
      </p>
      <div className="secret-row">
        <code className="secret" data-testid={props.testId} tabIndex={0}>
          {props.value}
        </code>
        <CopyButton value={props.value} />
      </div>
    </div>
  );
}
