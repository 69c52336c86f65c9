import { type ReactNode, useEffect, useId, useRef, useState } from "react";
import { useSubmitOnce } from "../hooks";
import { ErrorNote } from "./bits";

/**
 * A modal on the native <dialog>: the browser traps focus and closes on
 * Escape. Focus goes back to the opener by hand: the browser would do it on
 * close(), but React removes the dialog from the page before its cleanup can
 * close it, and focus then falls to the top of the page.
 */
export function Modal(props: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (d && !d.open) d.showModal();
    return () => {
      d?.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className={props.wide ? "modal modal-wide" : "modal"}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header className="modal-header">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" className="btn btn-ghost" aria-label="Close" onClick={props.onClose}>
          ✕
        </button>
      </header>
      <div className="modal-body">{props.children}</div>
    </dialog>
  );
}

/**
 * A yes/no question for destructive actions; the safe answer has focus.
 * `onConfirm` closes the dialog when its change is done; when it throws (the
 * API's refusal, e.g. its `detail` for a 404 or 409, or an unreachable
 * gateway) the message is shown in the dialog, which stays open so the user
 * can read it, fix the cause and try again or cancel. Reopened, it starts
 * without the old message (callers mount it only while it is open).
 */
export function ConfirmDialog(props: { title: string; message: ReactNode; confirmLabel: string; onConfirm: () => Promise<void> | void; onClose: () => void }) {
  // Busy while the change runs: a double click must not send it twice (two rotations, two revocations).
  const confirming = useSubmitOnce();
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <div className="stack">
        <div>{props.message}</div>
        <ErrorNote message={error} />
        <div className="actions">
          <button type="button" className="btn" autoFocus onClick={props.onClose}>
            Cancel
          </button>
          <button
            type="button"
            className="btn btn-danger"
            disabled={confirming.busy}
            aria-busy={confirming.busy}
            onClick={() =>
              void confirming.once(async () => {
                setError(null);
                try {
                  await props.onConfirm();
                } catch (err) {
                  setError(err instanceof Error ? err.message : String(err));
                }
              })
            }
          >
            {props.confirmLabel}
          </button>
        </div>
      </div>
    </Modal>
  );
}
