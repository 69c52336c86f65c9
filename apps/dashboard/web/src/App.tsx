import { useEffect, useRef, useState } from "react";
import { currentSession, onSessionLost, signOut } from "./api";
import { Loading } from "./components/bits";
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
  const [startupError, setStartupError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const signedIn = useRef(false);
  signedIn.current = Boolean(session);
  const loc = useLocation();

  useEffect(() => {
    onSessionLost(() => {
      // Only a session that was open "ends"; the first check on load just finds none.
      if (signedIn.current) setNotice("Your session ended (signed out elsewhere, expired, or its API key was revoked). Sign in again.");
      setSession(null);
    });
    currentSession().then(setSession, (e: unknown) => setStartupError(e instanceof Error ? e.message : String(e)));
  }, []);

  if (startupError) return <main className="center-page"><p role="alert">{startupError}</p></main>;
  if (session === undefined) return <main className="center-page"><Loading /></main>;
  if (session === null)
    return (
      <SignIn
        notice={notice}
        onSignedIn={(s) => {
          setNotice(null);
          setSession(s);
        }}
      />
    );

  const section = "/" + (loc.path.split("/")[1] ?? "");
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
          <button
            type="button"
            className="btn btn-small"
            onClick={async () => {
              await signOut().catch(() => undefined);
              setSession(null);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="content" tabIndex={-1}>
        {page}
      </main>
    </div>
  );
}
