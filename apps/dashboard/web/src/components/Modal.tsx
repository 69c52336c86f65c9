import { type ReactNode, useEffect, useId, useRef, useState } from "react";
import { useSubmitOnce } from "../hooks";
import { ErrorNote } from "./bits";

/** What can take focus from the keyboard inside a dialog's body. */
const FOCUSABLE = 'a[href], button:not(:disabled), input:not(:disabled), select:not(:disabled), textarea:not(:disabled), [tabindex]:not([tabindex="-1"])';

/**
 * A modal on the native <dialog>: the browser traps focus and closes on
 * Escape. Focus is placed by hand on opening: React's autoFocus runs while the
 * dialog is still closed, where nothing can take focus, and the browser then
 * picks the header's Close button. It goes to the element marked
 * `data-autofocus`, else the body's first control (a one-time secret, a form's
 * first field). It goes back to the opener by hand too: the browser would do it
 * on close(), but React removes the dialog from the page before its cleanup can
 * close it, and focus then falls to the top of the page. An opener that is gone
 * or disabled (the row deleted, the key revoked) leaves it to App's
 * useFocusKeptInPage, which hands it to the main content.
 */
export function Modal(props: { title: string; onClose: () => void; children: ReactNode; wide?: boolean; describedBy?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (d && !d.open) d.showModal();
    (d?.querySelector<HTMLElement>("[data-autofocus]") ?? d?.querySelector<HTMLElement>(`.modal-body :is(${FOCUSABLE})`))?.focus();
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
      aria-describedby={props.describedBy}
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
  const messageId = useId();
  return (
    <Modal title={props.title} onClose={props.onClose} describedBy={messageId}>
      <div className="stack">
        <div id={messageId}>{props.message}</div>
        <ErrorNote message={error} />
        <div className="actions">
          <button type="button" className="btn" data-autofocus onClick={props.onClose}>
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
