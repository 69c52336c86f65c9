#!/bin/sh
# Run a command on a server through the runbridge Automation API with nothing
# but curl and jq, wait for it, print its output, and exit with its exit code.
#
#   RUNBRIDGE_URL=https://runbridge.example.com RUNBRIDGE_API_KEY=rca_... \
#     ./runbridge-exec.sh SERVER_ID 'cd /opt/app && docker compose up -d' [TIMEOUT_SECONDS]
#
# Exit codes: the command's own when it completed; 124 timeout; 125 failed
# (could not run); 130 cancelled; 1 when the API refused the request.
set -eu

server_id=${1:?usage: runbridge-exec.sh SERVER_ID COMMAND [TIMEOUT_SECONDS]}
command=${2:?usage: runbridge-exec.sh SERVER_ID COMMAND [TIMEOUT_SECONDS]}
timeout=${3:-60}
api="${RUNBRIDGE_URL%/}/api/automation/v1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The key goes to curl in a header file, not on its command line (where ps would show it).
umask 077
printf 'Authorization: Bearer %s\n' "${RUNBRIDGE_API_KEY:?set RUNBRIDGE_API_KEY}" > "$work/auth"

# One Idempotency-Key for this run: curl's retries of the POST can never start the command twice.
key=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
run_id=${RUNBRIDGE_RUN_ID:-${GITHUB_RUN_ID:+github-run-$GITHUB_RUN_ID}}
run_id=${run_id:-${CI_PIPELINE_ID:+gitlab-pipeline-$CI_PIPELINE_ID}}
run_id=${run_id:-${BUILD_TAG:-}}

jq -n --arg server_id "$server_id" --arg command "$command" --argjson timeout "$timeout" --arg run_id "$run_id" \
  '{server_id: $server_id, command: $command, timeout_seconds: $timeout} + (if $run_id == "" then {} else {run_id: $run_id} end)' \
  > "$work/body.json"

# $1 = method, $2 = path, $3 = optional body file; the response lands in $work/response.json.
call() {
  set -- "$1" "$2" "${3:-}"
  status=$(curl -sS -o "$work/response.json" -w '%{http_code}' --retry 5 --retry-all-errors --retry-max-time 120 \
    -X "$1" -H @"$work/auth" -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
    ${3:+--data-binary @"$3"} "$api$2")
  case "$status" in
    2*) ;;
    *) echo "runbridge: HTTP $status: $(jq -r '.detail // .' "$work/response.json" 2>/dev/null)" >&2; exit 1 ;;
  esac
}

call POST /exec "$work/body.json"
op=$(jq -r .operation_id "$work/response.json")
status=$(jq -r .status "$work/response.json")
echo "runbridge: operation $op" >&2

# Still running after the request's wait bound: poll the operation until it ends.
while [ "$status" = running ]; do
  sleep 2
  call GET "/operations/$op"
  status=$(jq -r .status "$work/response.json")
done

# The POST answer has the result at the top level; GET /operations/{id} has it under .result.
jq -j '(.result // .).stdout // ""' "$work/response.json"
jq -j '(.result // .).stderr // ""' "$work/response.json" >&2
case "$status" in
  completed) exit "$(jq -r '(.result // .).exit_code // 0' "$work/response.json")" ;;
  timeout) echo "runbridge: operation $op timed out" >&2; exit 124 ;;
  cancelled) echo "runbridge: operation $op was cancelled" >&2; exit 130 ;;
  *) echo "runbridge: operation $op $status: $(jq -r '.error // ""' "$work/response.json")" >&2; exit 125 ;;
esac
