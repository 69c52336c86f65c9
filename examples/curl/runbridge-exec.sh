#!/bin/sh
# Run a command on a server through the runbridge Automation API with nothing
# but curl and jq, wait for it, print its output, and exit with its exit code.
#
#   RUNBRIDGE_URL=https://runbridge.example.com RUNBRIDGE_API_KEY=rca_... \
#     ./runbridge-exec.sh SERVER_ID 'cd /opt/app && docker compose up -d' [TIMEOUT_SECONDS]
#
# Exit codes: the command's own when it completed; 124 timeout; 125 failed
# (could not run); 130 cancelled; 1 when the API refused the request or did not answer.
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

# One Idempotency-Key for this run: a retry of the POST is answered with the first attempt's outcome.
key=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
run_id=${RUNBRIDGE_RUN_ID:-${GITHUB_RUN_ID:+github-run-$GITHUB_RUN_ID}}
run_id=${run_id:-${CI_PIPELINE_ID:+gitlab-pipeline-$CI_PIPELINE_ID}}
run_id=${run_id:-${BUILD_TAG:-}}

jq -n --arg server_id "$server_id" --arg command "$command" --argjson timeout "$timeout" --arg run_id "$run_id" \
  '{server_id: $server_id, command: $command, timeout_seconds: $timeout} + (if $run_id == "" then {} else {run_id: $run_id} end)' \
  > "$work/body.json"

# $1 = method, $2 = path, $3 = body file or "", then curl options of its own. Sets $status (000: no
# answer, curl says why); the response lands in $work/response.json, its headers in $work/headers.
request() {
  method=$1 path=$2 body=$3
  shift 3
  status=$(curl -sS -o "$work/response.json" -D "$work/headers" -w '%{http_code}' "$@" \
    -X "$method" -H @"$work/auth" -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
    ${body:+--data-binary @"$body"} "$api$path") || status=000
}

# Anything but a 2xx answer ends the script.
check() {
  case "$status" in
    2*) ;;
    000) echo "runbridge: the API did not answer" >&2; exit 1 ;;
    *) echo "runbridge: HTTP $status: $(jq -r '.detail // .' "$work/response.json" 2>/dev/null)" >&2; exit 1 ;;
  esac
}

# The POST is sent again (same Idempotency-Key) only after no answer at all, 429, 502, 503 or 504,
# never with curl's --retry: that also retries a 500, which the gateway answers when it cannot tell
# whether it recorded the operation (it may still run; the key is kept, a retry gets the same 500)
# or on an unexpected error (the key is released: a retry could start the command a second time).
# Up to 6 attempts, 1 s apart doubling, or
# as long as a 429's or 503's Retry-After says (in seconds, up to 60).
attempt=1
while :; do
  rm -f "$work/headers"
  request POST /exec "$work/body.json"
  case "$status" in 000|429|502|503|504) ;; *) break ;; esac
  [ "$attempt" -lt 6 ] || break
  delay=$((1 << (attempt - 1)))
  case "$status" in
    429|503)
      hinted=$(tr -d '\r' < "$work/headers" | sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]: *\([0-9]\{1,4\}\)$/\1/p' | tail -n 1)
      delay=${hinted:-$delay}
      [ "$delay" -le 60 ] || delay=60 ;;
  esac
  if [ "$status" = 000 ]; then why="no answer"; else why="HTTP $status"; fi
  echo "runbridge: POST /exec: $why; retrying in $delay s" >&2
  sleep "$delay"
  attempt=$((attempt + 1))
done
check
op=$(jq -r .operation_id "$work/response.json")
status=$(jq -r .status "$work/response.json")
echo "runbridge: operation $op" >&2

# Still running after the request's wait bound: poll the operation until it ends.
while [ "$status" = running ]; do
  sleep 2
  # A GET changes nothing: curl may retry it on any error.
  request GET "/operations/$op" "" --retry 5 --retry-all-errors --retry-max-time 120
  check
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
