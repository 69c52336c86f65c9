/**
 * CI metadata for `run_context` and a `run_id`, read from the environment of
 * the CI system the client runs in: GitHub Actions, GitLab CI or Jenkins.
 */

export interface CiRun {
  /** run_id: groups every operation of one CI run. */
  runId: string | undefined;
  context: Record<string, string>;
}

type Env = Record<string, string | undefined>;

// Bounds of the API's run_context fields; longer values are cut so a long branch name never fails a request.
const FIELD_MAX: Record<string, number> = { provider: 100, repository: 500, workflow: 500, trigger: 100, actor: 200, sha: 100, ref: 500 };
const EXTRA_MAX = 2000;
const RUN_ID_MAX = 255;

function compact(fields: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v.trim() === "") continue;
    out[k] = v.slice(0, FIELD_MAX[k] ?? EXTRA_MAX);
  }
  return out;
}

/** A repository URL without any user:password@ part (Jenkins' GIT_URL can hold a token). */
export function withoutCredentials(url: string | undefined): string | undefined {
  if (!url) return url;
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

function github(env: Env): CiRun {
  const server = env.GITHUB_SERVER_URL ?? "https://github.com";
  const runUrl = env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID ? `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}` : undefined;
  return {
    runId: env.GITHUB_RUN_ID ? `github-run-${env.GITHUB_RUN_ID}` : undefined,
    context: compact({
      provider: "github_actions",
      repository: env.GITHUB_REPOSITORY,
      workflow: env.GITHUB_WORKFLOW,
      trigger: env.GITHUB_EVENT_NAME,
      actor: env.GITHUB_ACTOR,
      sha: env.GITHUB_SHA,
      ref: env.GITHUB_REF,
      job: env.GITHUB_JOB,
      run_number: env.GITHUB_RUN_NUMBER,
      run_attempt: env.GITHUB_RUN_ATTEMPT,
      run_url: runUrl,
    }),
  };
}

function gitlab(env: Env): CiRun {
  const tag = env.CI_COMMIT_TAG;
  const ref = tag ? `refs/tags/${tag}` : env.CI_COMMIT_BRANCH ? `refs/heads/${env.CI_COMMIT_BRANCH}` : env.CI_COMMIT_REF_NAME;
  return {
    runId: env.CI_PIPELINE_ID ? `gitlab-pipeline-${env.CI_PIPELINE_ID}` : undefined,
    context: compact({
      provider: "gitlab_ci",
      repository: env.CI_PROJECT_PATH,
      workflow: env.CI_PIPELINE_NAME || env.CI_JOB_NAME,
      trigger: env.CI_PIPELINE_SOURCE,
      actor: env.GITLAB_USER_LOGIN,
      sha: env.CI_COMMIT_SHA,
      ref,
      job: env.CI_JOB_NAME,
      job_url: env.CI_JOB_URL,
      run_url: env.CI_PIPELINE_URL,
    }),
  };
}

function jenkins(env: Env): CiRun {
  const branch = env.BRANCH_NAME ?? env.GIT_BRANCH;
  return {
    // BUILD_TAG is "jenkins-${JOB_NAME}-${BUILD_NUMBER}", unique per build.
    runId: env.BUILD_TAG ?? (env.JOB_NAME && env.BUILD_NUMBER ? `jenkins-${env.JOB_NAME}-${env.BUILD_NUMBER}` : undefined),
    context: compact({
      provider: "jenkins",
      repository: withoutCredentials(env.GIT_URL ?? env.CHANGE_URL),
      workflow: env.JOB_NAME,
      trigger: env.CHANGE_ID ? "change_request" : undefined,
      actor: env.BUILD_USER_ID ?? env.CHANGE_AUTHOR,
      sha: env.GIT_COMMIT,
      ref: branch,
      build_number: env.BUILD_NUMBER,
      run_url: env.BUILD_URL,
    }),
  };
}

/** The CI run this process is part of, or null outside GitHub Actions, GitLab CI and Jenkins. */
export function detectCiRun(env: Env = process.env): CiRun | null {
  let run: CiRun | null = null;
  if (env.GITHUB_ACTIONS === "true") run = github(env);
  else if (env.GITLAB_CI === "true") run = gitlab(env);
  else if (env.JENKINS_URL || env.JENKINS_HOME) run = jenkins(env);
  if (run?.runId) run.runId = run.runId.slice(0, RUN_ID_MAX);
  return run;
}
