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
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const next = props.tab === "api" ? "automation" : "api";
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
