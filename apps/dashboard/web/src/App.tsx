import { useCallback, useEffect, useRef, useState } from "react";
import { currentSession, onSessionChangedElsewhere, onSessionLost, onSessionSwitched, signOut } from "./api";
import { Loading } from "./components/bits";
import { KeptSecrets } from "./components/KeptSecrets";
import { secretsOnScreen, type ShownSecret } from "./components/one-time-store";
import { ApiKeysPage } from "./pages/ApiKeysPage";
import { ApplicationsPage } from "./pages/ApplicationsPage";
import { AuditPage } from "./pages/AuditPage";
import { CredentialsPage } from "./pages/CredentialsPage";
import { LogsPage } from "./pages/LogsPage";
import { OperationPage } from "./pages/OperationPage";
import { ServersPage } from "./pages/ServersPage";
import { SignIn } from "./pages/SignIn";
import { href, navigate, useLocation } from "./router";
import type { Session } from "./types";

const NAV = [
  { path: "/keys", label: "API Keys" },
  { path: "/logs", label: "Logs" },
  { path: "/servers", label: "Servers" },
  { path: "/applications", label: "Applications" },
  { path: "/credentials", label: "Registry credentials" },
  { path: "/audit", label: "Audit" },
];

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const [signOutError, setSignOutError] = useState<string | null>(null);
  const [signingOut, setSigningOut] = useState(false);
  const [switched, setSwitched] = useState<string | null>(null);
  const [kept, setKept] = useState<ShownSecret[]>([]);
  /** Before the session's pages unmount: the one-time secrets they show stay on screen (see one-time-store). */
  const keepSecrets = () => {
    const now = secretsOnScreen();
    if (now.length > 0) setKept((k) => [...k, ...now.filter((s) => !k.some((x) => x.value === s.value))]);
  };
  const shownSession = useRef<Session | null>(null);
  shownSession.current = session ?? null;
  const loc = useLocation();
  const startup = useStartup(setSession);
  const section = "/" + (loc.path.split("/")[1] ?? "");
  const pageName = pageTitle(Boolean(startup.error), session, section);
  // The tab's title names the page (WCAG 2.4.2): it is what a screen reader reads first, and what tells tabs apart.
  useEffect(() => {
    document.title = pageName ? `${pageName} · runbridge dashboard` : "runbridge dashboard";
  }, [pageName]);
  useFocusKeptInPage();
  // A new page (not another filter or tab of the same one) puts focus at the start of its content, as a page load
  // would: left on the link that was followed, it would tell a screen reader nothing, and Tab would start from the menu.
  const shownPath = useRef(loc.path);
  useEffect(() => {
    if (shownPath.current === loc.path) return;
    shownPath.current = loc.path;
    document.getElementById("main")?.focus({ preventScroll: true });
  }, [loc.path]);

  useEffect(() => {
    onSessionLost(() => {
      keepSecrets();
      // Only a session that was open "ends"; the first check on load just finds none.
      if (shownSession.current) setNotice("Your session ended (signed out elsewhere, expired, or its API key was revoked). Sign in again.");
      setSession(null);
    });
    // Another tab signed in as someone else: follow it, and say so, so this tab never shows one tenant's data under another's name.
    const follow = (s: Session) => {
      const before = shownSession.current;
      if (before && (before.tenant_id !== s.tenant_id || before.api_key_id !== s.api_key_id)) {
        keepSecrets();
        setSwitched(`This browser was signed in as ${s.tenant_name ?? "another tenant"} in another tab; this tab now shows that tenant. Nothing you started here was changed.`);
      }
      setSession(s);
    };
    onSessionSwitched(follow);
    onSessionChangedElsewhere(() => {
      currentSession().then(
        (s) => {
          if (s) follow(s);
          else {
            keepSecrets();
            if (shownSession.current) setNotice("You signed out in another tab.");
            setSession(null);
          }
        },
        () => undefined,
      );
    });
  }, []);

  const doSignOut = async () => {
    setSigningOut(true);
    setSignOutError(null);
    try {
      await signOut();
      setSwitched(null);
      setSession(null);
    } catch (e) {
      // The server session would live on for hours: say so and stay signed in rather than pretend.
      setSignOutError(`Sign out failed: ${e instanceof Error ? e.message : String(e)} You are still signed in.`);
    } finally {
      setSigningOut(false);
    }
  };

  if (startup.error)
    return (
      <main className="center-page">
        <div className="stack">
          <h1>Cannot reach runbridge</h1>
          <p role="alert">{startup.error}</p>
          <p className="muted">{startup.retrying ? "Retrying…" : "Retrying automatically."}</p>
          <button type="button" className="btn" onClick={startup.retry} disabled={startup.retrying}>
            Retry now
          </button>
        </div>
      </main>
    );
  if (session === undefined) return <main className="center-page"><Loading /></main>;
  const keptPanel = <KeptSecrets secrets={kept} onDismiss={() => setKept([])} />;
  if (session === null)
    return (
      <>
        {keptPanel}
        <SignIn
          notice={notice}
          onSignedIn={(s) => {
            setNotice(null);
            setSession(s);
          }}
        />
      </>
    );

  let page;
  if (loc.path.startsWith("/operations/")) page = <OperationPage id={loc.path.slice("/operations/".length)} />;
  else if (section === "/logs") page = <LogsPage query={loc.query} />;
  else if (section === "/servers") page = <ServersPage />;
  else if (section === "/applications") page = <ApplicationsPage />;
  else if (section === "/credentials") page = <CredentialsPage />;
  else if (section === "/audit") page = <AuditPage query={loc.query} />;
  else page = <ApiKeysPage tab={loc.query.get("tab") === "api" ? "api" : "automation"} />;

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href={href("/keys")} onClick={(e) => { e.preventDefault(); navigate("/keys"); }}>
          runbridge
        </a>
        <nav aria-label="Main" className="nav">
          <ul>
            {NAV.map((n) => {
              const active = section === n.path || (n.path === "/logs" && section === "/operations") || (n.path === "/keys" && section === "/");
              return (
                <li key={n.path}>
                  <a
                    href={href(n.path)}
                    aria-current={active ? "page" : undefined}
                    onClick={(e) => {
                      if (e.metaKey || e.ctrlKey || e.shiftKey) return;
                      e.preventDefault();
                      navigate(n.path);
                    }}
                  >
                    {n.label}
                  </a>
                </li>
              );
            })}
          </ul>
        </nav>
        <div className="who">
          <span className="muted" title={session.api_key_prefix ?? undefined}>
            {session.tenant_name ?? "tenant"}
          </span>
          <button type="button" className="btn btn-small" disabled={signingOut} onClick={() => void doSignOut()}>
            {signOutError ? "Retry sign out" : "Sign out"}
          </button>
        </div>
      </header>
      {switched ? (
        <div className="error-note session-switched" role="alert">
          {switched}{" "}
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setSwitched(null)}>
            Dismiss
          </button>
        </div>
      ) : null}
      {keptPanel}
      {signOutError ? (
        <div className="error-note sign-out-error" role="alert">
          {signOutError}
        </div>
      ) : null}
      {/* Keyed by the signed-in tenant and key: a session switch starts every page afresh. */}
      <main id="main" className="content" tabIndex={-1} key={`${session.tenant_id}/${session.api_key_id}`}>
        {page}
      </main>
    </div>
  );
}

/** The page's name, for the tab's title; null while the session is being checked. */
function pageTitle(unreachable: boolean, session: Session | null | undefined, section: string): string | null {
  if (unreachable) return "Cannot reach runbridge";
  if (session === null) return "Sign in";
  if (session === undefined) return null;
  if (section === "/operations") return "Operation";
  return NAV.find((n) => n.path === section)?.label ?? "API Keys";
}

/**
 * Focus whose element goes away — the button of a row deleted after its dialog
 * gave focus back, or disabled (a revoked key's) — falls to the page, and Tab
 * then starts again from the top. It goes to the main content instead, where
 * the user was. Not while a dialog is open: it keeps focus itself, and its
 * submit button is only disabled while busy.
 */
function useFocusKeptInPage(): void {
  useEffect(() => {
    let last: Element | null = null;
    const onFocusIn = (e: FocusEvent) => {
      last = e.target instanceof Element ? e.target : null;
    };
    const observer = new MutationObserver(() => {
      const now = document.activeElement;
      const onPage = now === null || now === document.body;
      // A disabled element keeps focus until the browser's next rendering step: move it before it drops.
      const stranded = (onPage && last !== null && !last.isConnected) || (!onPage && now.matches(":disabled"));
      if (!stranded || document.querySelector("dialog[open]")) return;
      last = null;
      document.getElementById("main")?.focus({ preventScroll: true });
    });
    document.addEventListener("focusin", onFocusIn);
    observer.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["disabled"] });
    return () => {
      document.removeEventListener("focusin", onFocusIn);
      observer.disconnect();
    };
  }, []);
}

/**
 * The first session check. A gateway that is starting or briefly down answers
 * 503 or not at all: retry with backoff (and on demand) instead of leaving a
 * dead error page.
 */
function useStartup(setSession: (s: Session | null) => void): { error: string | null; retrying: boolean; retry: () => void } {
  const [error, setError] = useState<string | null>(null);
  const [retrying, setRetrying] = useState(false);
  const attempt = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const check = useCallback(() => {
    clearTimeout(timer.current);
    setRetrying(true);
    currentSession().then(
      (s) => {
        setError(null);
        setRetrying(false);
        setSession(s);
      },
      (e: unknown) => {
        setError(e instanceof Error ? e.message : String(e));
        setRetrying(false);
        const delay = Math.min(30_000, 2000 * 2 ** attempt.current++);
        timer.current = setTimeout(check, delay);
      },
    );
  }, [setSession]);

  useEffect(() => {
    check();
    return () => clearTimeout(timer.current);
  }, [check]);

  return { error, retrying, retry: check };
}
