import { type KeyboardEvent } from "react";
import { PageHeader } from "../components/bits";
import { navigate } from "../router";
import { AutomationKeysTab } from "./AutomationKeysTab";
import { GeneralKeysTab } from "./GeneralKeysTab";

type Tab = "api" | "automation";
const TABS: { id: Tab; label: string }[] = [
  { id: "api", label: "API Keys" },
  { id: "automation", label: "Automation Keys" },
];

/** API Keys → tabs "API Keys" (general keys) and "Automation Keys" (CI keys), as the spec describes. */
export function ApiKeysPage(props: { tab: Tab }) {
  const select = (t: Tab) => navigate(t === "api" ? "/keys?tab=api" : "/keys?tab=automation", { replace: true });
  // The keys of a tab list (WAI-ARIA Authoring Practices): arrows go round, Home and End go to the first and last tab.
  const onKey = (e: KeyboardEvent) => {
    const at = TABS.findIndex((t) => t.id === props.tab);
    const moves: Record<string, number> = { ArrowLeft: at - 1 + TABS.length, ArrowRight: at + 1, Home: 0, End: TABS.length - 1 };
    const next = TABS[(moves[e.key] ?? -1) % TABS.length]?.id;
    if (!next) return;
    e.preventDefault();
    select(next);
    document.getElementById(`tab-${next}`)?.focus();
  };
  return (
    <>
      <PageHeader title="API Keys" description="General API keys sign in here and call the management API; automation keys are what CI systems use to run operations." />
      <div role="tablist" aria-label="Key kinds" className="tabs" onKeyDown={onKey}>
        {TABS.map((t) => (
          <button
            key={t.id}
            id={`tab-${t.id}`}
            type="button"
            role="tab"
            aria-selected={props.tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={props.tab === t.id ? 0 : -1}
            className="tab"
            onClick={() => select(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <section role="tabpanel" id={`panel-${props.tab}`} aria-labelledby={`tab-${props.tab}`} className="tabpanel">
        {props.tab === "api" ? <GeneralKeysTab /> : <AutomationKeysTab />}
      </section>
    </>
  );
}
