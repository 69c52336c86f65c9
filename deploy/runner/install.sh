#!/bin/sh
# Installs the runbridge runner on this server as a systemd service.
#
#   sudo ./install.sh --url https://dispatcher.example.com --token rbr_...
#   echo "$TOKEN" | sudo ./install.sh --url wss://dispatcher.example.com --token -
#   sudo ./install.sh --upgrade --bundle ./runbridge-runner.cjs
#
# Options:
#   --url URL         dispatcher URL (https:// or wss://; http:// only for a local trial)
#   --token TOKEN     the server's rbr_ runner token; "-" reads it from stdin, and
#                     RUNBRIDGE_RUNNER_TOKEN in the environment also works (keeps it
#                     out of the process list and shell history)
#   --ca-file PATH    PEM CA to trust for the dispatcher's certificate (private CA)
#   --bundle PATH     the runner file (default: runbridge-runner.cjs next to this script)
#   --user NAME       account the runner and its commands run as (default: runbridge,
#                     created if missing; "root" lets commands do anything, including
#                     reboot, without sudo). The service starts the runner as root and
#                     it switches to NAME at once, so commands cannot read its token
#
#   --upgrade         replace the runner file and the unit, then restart; configuration is kept
#   --no-start        install everything but do not enable or start the service
#   --root DIR        install under DIR instead of / (packaging and tests; implies --no-start)
#
# Run again over an existing installation (e.g. to put in a new token), it
# keeps what it is not told: the account, the CA file and every other setting
# in /etc/runbridge/runner.env; options given on the command line win.
set -eu

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

here=$(cd "$(dirname "$0")" && pwd)
url=""
token="${RUNBRIDGE_RUNNER_TOKEN:-}"
ca_file=""
bundle="$here/runbridge-runner.cjs"
user="runbridge"
user_given=0
upgrade=0
start=1
root=""

while [ $# -gt 0 ]; do
  case "$1" in
    --url) [ $# -ge 2 ] || die "--url needs a value"; url=$2; shift 2 ;;
    --token) [ $# -ge 2 ] || die "--token needs a value"; token=$2; shift 2 ;;
    --ca-file) [ $# -ge 2 ] || die "--ca-file needs a value"; ca_file=$2; shift 2 ;;
    --bundle) [ $# -ge 2 ] || die "--bundle needs a value"; bundle=$2; shift 2 ;;
    --user) [ $# -ge 2 ] || die "--user needs a value"; user=$2; user_given=1; shift 2 ;;
    --upgrade) upgrade=1; shift ;;
    --no-start) start=0; shift ;;
    --root) [ $# -ge 2 ] || die "--root needs a value"; root=${2%/}; start=0; shift 2 ;;
    -h|--help) sed -n '2,$ { /^#/!q; p; }' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (sudo), or use --root DIR to stage the files"; fi

# --- checks, before anything is written -------------------------------------
node_bin=$(command -v node || true)
[ -n "$node_bin" ] || die "Node.js 20 or later is required (node is not on PATH)"
node_major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or later is required (found $("$node_bin" --version))"
# The unit starts this node as root: whoever can replace it (a user's nvm under
# their home, a directory others can write to) would run as root at the next
# start. It and every directory above it must be root's, writable by no one else.
if [ -z "$root" ]; then
  p=$(readlink -f "$node_bin")
  while :; do
    # shellcheck disable=SC2046 # two words wanted: owner and mode
    set -- $(stat -c '%u %a' "$p")
    if [ "$1" -ne 0 ] || [ $((0$2 & 022)) -ne 0 ]; then
      die "$node_bin ($p) is started as root by the runner's service, but $p is not root's alone (owner uid $1, mode $2): install Node.js where only root can change it (e.g. from your distribution or nodejs.org into /usr/local), or put one such first on PATH"
    fi
    [ "$p" != / ] || break
    p=$(dirname "$p")
  done
fi
[ -f "$bundle" ] || die "runner file not found: $bundle (build it with: pnpm build:runner)"
# Starting the service needs systemd; without it systemctl would fail only
# after everything was written. /run/systemd/system exists exactly when
# systemd is the running init (what sd_booted() checks).
if [ "$start" -eq 1 ] && [ ! -d "$root/run/systemd/system" ]; then
  die "systemd is not running on this machine, so the runner cannot be started as a service; nothing was written. Re-run with --no-start to install the files only, then run node /opt/runbridge/runbridge-runner.cjs as root with the variables of /etc/runbridge/runner.env and RUNBRIDGE_RUN_AS=<the account> under the supervisor you use (it switches to that account at once)"
fi

etc="$root/etc/runbridge"
env_file="$etc/runner.env"
opt="$root/opt/runbridge"
unit="$root/etc/systemd/system/runbridge-runner.service"
# The state directory holds the ledger (what already ran, results not yet
# delivered) and runner.lock; commands must not run in it, where a cleanup
# such as `rm -rf ./*` or `git clean -fdx` would erase the ledger and with it
# the guarantee that an operation never runs twice. Commands get work/, and
# the runbridge user's home (~/.docker, ~/.ssh...) is home/, both beside it.
state_dir=/var/lib/runbridge
work_dir=$state_dir/work
home_dir=$state_dir/home

# The account the installed unit runs the runner as: RUNBRIDGE_RUN_AS, or
# User= in units of earlier versions.
unit_user() { sed -n -e 's/^User=//p' -e 's/^Environment=RUNBRIDGE_RUN_AS=//p' "$unit" | tail -n 1; }

write_unit() { # account
  sed -e "s#@NODE@#$node_bin#g" -e "s#@USER@#$1#g" "$here/runbridge-runner.service" > "$unit.new"
  chmod 0644 "$unit.new"
  mv "$unit.new" "$unit"
}

install_bundle() {
  mkdir -p "$opt"
  cp "$bundle" "$opt/runbridge-runner.cjs.new"
  chmod 0755 "$opt/runbridge-runner.cjs.new"
  # Renamed into place, so a running runner never sees a half-written file.
  mv "$opt/runbridge-runner.cjs.new" "$opt/runbridge-runner.cjs"
}

# The existing env file's settings (empty without one): a re-run or an upgrade keeps what it is not told.
old_env=""
if [ -f "$env_file" ]; then old_env=$(cat "$env_file"); fi
old_value() { printf '%s\n' "$old_env" | sed -n "s/^$1=//p" | tail -n 1; }
unquote() { v=${1#\"}; printf '%s' "${v%\"}"; }

# Replaces the env file with what comes on stdin. The token is a secret: the
# file is created 0600 (never readable by others, not even for a moment) and
# only systemd, as root, reads it.
put_env_file() {
  old_umask=$(umask)
  umask 0077
  cat > "$env_file.new"
  umask "$old_umask"
  chmod 0600 "$env_file.new"
  [ -n "$root" ] || chown root:root "$env_file.new"
  mv "$env_file.new" "$env_file"
}

# Installs of earlier versions made the state directory the account's home.
# Moves the home to home/ (not the state directory itself: the ledger is there);
# move_dotfiles then takes the dot files the old home collected along.
moved_home=0
home_is_state_dir() { # account
  [ -z "$root" ] && [ "$1" != "root" ] && id "$1" >/dev/null 2>&1 && [ "$(getent passwd "$1" | cut -d: -f6)" = "$state_dir" ]
}
move_home() { # account
  home_is_state_dir "$1" || return 0
  # Without -m: usermod must not move the state directory (the ledger) itself.
  if usermod -d "$home_dir" "$1"; then
    moved_home=1
    say "moved $1's home directory from $state_dir to $home_dir"
  else
    say "warning: could not change $1's home directory to $home_dir (it stays $state_dir); run: usermod -d $home_dir $1" >&2
  fi
}

# The state directory, work/ and home/, 0700 and the account's. When the
# account changed, what is in them changes hands too: the ledger and the lock
# would otherwise stay the old account's, and the runner could not open them.
#
# work/ and home/ are entries of the state directory, which is the account's:
# any command the runner ran can replace them with a symbolic link, and chmod
# and chown, run here as root, would follow it — to /opt/runbridge, say,
# handing the runner's own file to the account, which systemd then starts as
# root. Such a link is refused, and chown never follows one (-h; -R does not).
make_dirs() { # account group previous-account
  for d in "$root$work_dir" "$root$home_dir"; do
    [ ! -L "$d" ] || die "$d is a symbolic link: the runner's account (a command it ran) can put one there, and following it as root would hand what it points to to that account; remove it (or move it aside) and run again"
  done
  mkdir -p "$root$state_dir" "$root$work_dir" "$root$home_dir"
  chmod 0700 "$root$state_dir" "$root$work_dir" "$root$home_dir"
  [ -z "$root" ] || return 0
  if [ -n "$3" ] && [ "$3" != "$1" ]; then
    chown -R "$1:$2" "$state_dir"
    # A state directory set elsewhere (RUNBRIDGE_STATE_DIR, kept on a re-run) holds the ledger: it changes hands too.
    kept_state=$(unquote "$(old_value RUNBRIDGE_STATE_DIR)")
    if [ -n "$kept_state" ] && [ "${kept_state%/}" != "$state_dir" ] && [ -d "$kept_state" ]; then chown -R "$1:$2" "$kept_state"; fi
  else
    chown -h "$1:$2" "$state_dir" "$work_dir" "$home_dir"
  fi
}

move_dotfiles() {
  [ "$moved_home" -eq 1 ] || return 0
  # Dot files the old home collected (~/.docker with registry logins, ~/.ssh...)
  # follow it; the runner itself keeps nothing in dot files there.
  for f in "$state_dir"/.[!.]* "$state_dir"/..?*; do
    [ -e "$f" ] || continue
    if [ -e "$home_dir/${f##*/}" ]; then
      say "warning: left $f where it is ($home_dir already has ${f##*/})" >&2
    else
      mv "$f" "$home_dir/" && say "moved $f to $home_dir/"
    fi
  done
}

if [ "$upgrade" -eq 1 ]; then
  [ -f "$env_file" ] || die "no existing installation ($env_file is missing); install with --url and --token first"
  install_bundle
  # The unit too: units of earlier versions started the runner as its account
  # (User=), which left the token readable to commands.
  account=root
  if [ -f "$unit" ]; then
    account=$(unit_user)
    account=${account:-root}
    write_unit "$account"
  fi
  # The unit runs commands in work/, which installs of earlier versions do not
  # have (their commands ran in the state directory): without it the service
  # could not start. usermod cannot change the home of an account a process
  # runs as: the runner stops first (it restarts below in any case).
  if [ "$start" -eq 1 ] && home_is_state_dir "$account"; then systemctl stop runbridge-runner; fi
  move_home "$account"
  group=$account
  if [ -z "$root" ]; then group=$(id -gn "$account"); fi
  make_dirs "$account" "$group" ""
  move_dotfiles
  old_work=$(unquote "$(old_value RUNBRIDGE_WORKDIR)")
  old_state=$(unquote "$(old_value RUNBRIDGE_STATE_DIR)")
  if [ "${old_work%/}" = "${old_state:-$state_dir}" ] || [ "${old_work%/}" = "$state_dir" ]; then
    printf '%s\n' "$old_env" | sed "s#^RUNBRIDGE_WORKDIR=.*#RUNBRIDGE_WORKDIR=$work_dir#" | put_env_file
    say "commands now run in $work_dir, no longer in the state directory"
  fi
  if [ "$start" -eq 1 ]; then
    systemctl daemon-reload
    systemctl restart runbridge-runner
  fi
  say "runbridge runner upgraded: $opt/runbridge-runner.cjs"
  exit 0
fi

[ -n "$url" ] || die "--url is required (the dispatcher URL, e.g. https://dispatcher.example.com)"
case "$url" in
  https://*|wss://*) ;;
  # Loopback only, as the runner's own check: not http://localhost.example.com.
  http://localhost|http://localhost[:/]*|http://127.*|http://\[::1\]*|ws://localhost|ws://localhost[:/]*|ws://127.*|ws://\[::1\]*) ;;
  http://*|ws://*) say "warning: $url is not TLS; the runner token and every command would cross the network in clear text" >&2 ;;
  *) die "--url must start with https://, wss://, http:// or ws:// (got: $url)" ;;
esac
printf '%s' "$url" | grep -Eq '^[]A-Za-z0-9:/._~%@?&=+[-]+$' || die "--url contains characters not allowed in a URL: $url"

if [ "$token" = "-" ]; then IFS= read -r token || true; fi
[ -n "$token" ] || die "--token is required (the rbr_ runner token shown when the server was created)"
printf '%s' "$token" | grep -Eq '^rbr_[0-9A-Za-z]{42}$' || die "--token is not a runner token (expected rbr_ followed by 42 letters and digits)"

if [ -n "$ca_file" ]; then
  [ -f "$ca_file" ] || die "--ca-file not found: $ca_file"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_file" || die "--ca-file is not a PEM certificate: $ca_file"
fi
# --- an existing installation: what to carry over --------------------------
# Re-running is how a token is rotated; rebuilding the file from defaults would
# silently drop a private CA (the runner could no longer verify TLS), --user
# root, and any hand-edited setting.
kept=""
old_user=""
if [ -f "$unit" ]; then old_user=$(unit_user); fi
if [ "$user_given" -eq 0 ] && [ -n "$old_user" ]; then
  user=$old_user
  kept="$kept --user $user"
fi
case "$user" in *[!a-z0-9_-]*|"") die "--user must be a plain account name (got: $user)" ;; esac

# --- account ----------------------------------------------------------------
if [ -z "$root" ] && [ "$user" != "root" ] && ! id "$user" >/dev/null 2>&1; then
  useradd --system --home-dir "$home_dir" --no-create-home --shell /usr/sbin/nologin "$user"
  say "created system user $user"
fi
# A running runner would keep writing its ledger as the old account while the
# state directory changes hands, and usermod cannot change the home of an
# account a process runs as: it stops first (it restarts below in any case).
if [ "$start" -eq 1 ] && [ -f "$unit" ] && { [ "$user" != "$old_user" ] || home_is_state_dir "$user"; }; then
  systemctl stop runbridge-runner
fi
move_home "$user"
# Deploy and registry operations drive the docker CLI. Only when the account
# becomes the runner's: a re-run for the same account (a token rotation) leaves
# its groups as they are, so one an operator took out of docker (as good as
# root, docs/operations.md) stays out.
if [ -z "$root" ] && [ "$user" != "root" ] && [ "$user" != "$old_user" ] && getent group docker >/dev/null 2>&1; then
  usermod -aG docker "$user"
fi
group=$user
if [ -z "$root" ]; then group=$(id -gn "$user"); fi

# --- files ------------------------------------------------------------------
install_bundle
make_dirs "$user" "$group" "$old_user"
move_dotfiles
mkdir -p "$etc" "$root/etc/systemd/system"
chmod 0755 "$etc"
ca_line=""
if [ -n "$ca_file" ]; then
  cp "$ca_file" "$etc/dispatcher-ca.pem"
  chmod 0644 "$etc/dispatcher-ca.pem"
  ca_line="RUNBRIDGE_CA_FILE=/etc/runbridge/dispatcher-ca.pem"
elif [ -n "$(old_value RUNBRIDGE_CA_FILE)" ]; then
  ca_line="RUNBRIDGE_CA_FILE=$(old_value RUNBRIDGE_CA_FILE)"
  kept="$kept RUNBRIDGE_CA_FILE"
fi
# The state directory is never changed on a re-run: the ledger is there. The
# working directory is kept too, unless it was the state directory itself
# (installs of earlier versions), which is what moving to work/ is for.
state_line="RUNBRIDGE_STATE_DIR=$state_dir"
if [ -n "$(old_value RUNBRIDGE_STATE_DIR)" ]; then
  state_line="RUNBRIDGE_STATE_DIR=$(old_value RUNBRIDGE_STATE_DIR)"
  [ "$(unquote "$(old_value RUNBRIDGE_STATE_DIR)")" = "$state_dir" ] || kept="$kept RUNBRIDGE_STATE_DIR"
fi
work_line="RUNBRIDGE_WORKDIR=$work_dir"
old_work=$(unquote "$(old_value RUNBRIDGE_WORKDIR)")
if [ -n "$old_work" ] && [ "${old_work%/}" != "$(unquote "${state_line#*=}" | sed 's#/*$##')" ]; then
  work_line="RUNBRIDGE_WORKDIR=$(old_value RUNBRIDGE_WORKDIR)"
  [ "$old_work" = "$work_dir" ] || kept="$kept RUNBRIDGE_WORKDIR"
fi
log_line="LOG_LEVEL=info"
if [ -n "$(old_value LOG_LEVEL)" ]; then
  log_line="LOG_LEVEL=$(old_value LOG_LEVEL)"
  [ "$log_line" = "LOG_LEVEL=info" ] || kept="$kept LOG_LEVEL"
fi
# Everything else someone added to the file, verbatim.
extra_lines=$(printf '%s\n' "$old_env" | grep -E '^[A-Za-z_][A-Za-z0-9_]*=' | grep -Ev '^(RUNBRIDGE_DISPATCHER_URL|RUNBRIDGE_RUNNER_TOKEN|RUNBRIDGE_STATE_DIR|RUNBRIDGE_WORKDIR|RUNBRIDGE_CA_FILE|RUNBRIDGE_REBOOT_COMMAND|LOG_LEVEL)=' || true)
for name in $(printf '%s\n' "$extra_lines" | sed -n 's/=.*//p'); do kept="$kept $name"; done

reboot_line=""
sudoers="$root/etc/sudoers.d/runbridge-runner"
if [ "$user" = "root" ] && [ -f "$sudoers" ]; then
  # Left by an install for an unprivileged user; root needs no sudo rule.
  rm -f "$sudoers"
  say "removed $sudoers (the runner now runs as root)"
fi
if [ "$user" != "root" ]; then
  # An unprivileged runner may reboot its server through this one sudo rule, nothing else.
  reboot_line='RUNBRIDGE_REBOOT_COMMAND="sudo -n /sbin/shutdown -r now"'
  mkdir -p "$root/etc/sudoers.d"
  printf '# Installed by the runbridge runner installer: reboot operations only.\n%s ALL=(root) NOPASSWD: /sbin/shutdown -r now\n' "$user" > "$sudoers.new"
  chmod 0440 "$sudoers.new"
  if command -v visudo >/dev/null 2>&1 && ! visudo -cqf "$sudoers.new"; then rm -f "$sudoers.new"; die "the sudoers rule for reboots did not validate"; fi
  mv "$sudoers.new" "$sudoers"
  if [ -z "$root" ] && ! command -v sudo >/dev/null 2>&1; then
    say "warning: sudo is not installed, so reboot operations will fail; install sudo or use --user root" >&2
  fi
fi
# A reboot command set by hand is kept as long as the account stays the same.
old_reboot=$(old_value RUNBRIDGE_REBOOT_COMMAND)
if [ -n "$old_reboot" ] && [ "$user" = "$old_user" ] && [ "RUNBRIDGE_REBOOT_COMMAND=$old_reboot" != "$reboot_line" ]; then
  reboot_line="RUNBRIDGE_REBOOT_COMMAND=$old_reboot"
  kept="$kept RUNBRIDGE_REBOOT_COMMAND"
fi

{
  printf '# runbridge runner configuration, written by install.sh. Mode 0600: it holds the runner token.\n'
  printf 'RUNBRIDGE_DISPATCHER_URL=%s\n' "$url"
  printf 'RUNBRIDGE_RUNNER_TOKEN=%s\n' "$token"
  printf '%s\n' "$state_line" "$work_line"
  [ -z "$ca_line" ] || printf '%s\n' "$ca_line"
  [ -z "$reboot_line" ] || printf '%s\n' "$reboot_line"
  printf '%s\n' "$log_line"
  [ -z "$extra_lines" ] || printf '%s\n' "$extra_lines"
} | put_env_file

write_unit "$user"

[ -z "$kept" ] || say "kept from the existing installation:$kept (give an option or edit $env_file to change them)"

if [ "$start" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable runbridge-runner >/dev/null
  systemctl restart runbridge-runner
  say "runbridge runner installed and started; follow it with: journalctl -u runbridge-runner -f"
else
  say "runbridge runner installed under ${root:-/} (not started)"
fi
