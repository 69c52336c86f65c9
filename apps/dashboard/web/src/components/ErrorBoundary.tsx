import { Component, type ReactNode } from "react";

/**
 * What the user sees when rendering fails, instead of an empty page: React
 * unmounts everything below an error nobody catches. Data the API returned is
 * written by many hands (run_context comes from CI jobs), so one odd value
 * must cost one page, not the dashboard.
 */
export class ErrorBoundary extends Component<{ children: ReactNode }, { failed: Error | null }> {
  override state = { failed: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { failed: error };
  }

  override render() {
    if (!this.state.failed) return this.props.children;
    return (
      <div role="alert" className="error-note">
        <p>This page could not be shown: {this.state.failed.message}</p>
        <button type="button" className="btn" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
