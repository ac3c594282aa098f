# shellcheck shell=bash
# Starting Roster's backing services from locally installed packages, shared by .ci/test
# and scripts/stack (sourced, not run). PostgreSQL through Debian's pg_ctlcluster, RabbitMQ
# with `rabbitmq-server -detached`, MailDev from npm (installed when missing).

# Whether something accepts TCP connections on 127.0.0.1:PORT.
roster_reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to 90 s for each PORT to accept connections; fails naming the first that does not.
roster_wait_for_ports() {
  local port
  for port in "$@"; do
    for _ in $(seq 1 90); do roster_reachable "$port" && break; sleep 1; done
    roster_reachable "$port" || { echo "nothing answers on 127.0.0.1:$port after 90 s" >&2; return 1; }
  done
}

# roster_start_local postgres|rabbitmq|maildev [SMTP_PORT WEB_PORT MAIL_DIR LOG_FILE]
# Starts one service in the background and returns at once (wait with roster_wait_for_ports).
# Fails when the service is not installed here. For maildev (defaults: 1025, 1080,
# $TMPDIR/roster-maildev, $TMPDIR/roster-maildev.log) ROSTER_STARTED_PID is its pid; for
# postgres ROSTER_STARTED_CLUSTER is the "<version> main" cluster started.
roster_start_local() {
  case "$1" in
    postgres)
      if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        ROSTER_STARTED_CLUSTER="$(ls /etc/postgresql | head -n1) main"
        # shellcheck disable=SC2086 # two words: version and cluster name
        pg_ctlcluster --skip-systemctl-redirect $ROSTER_STARTED_CLUSTER start
      else
        return 1
      fi ;;
    rabbitmq)
      command -v rabbitmq-server >/dev/null || return 1
      rabbitmq-server -detached ;;
    maildev)
      if ! command -v maildev >/dev/null; then
        command -v npm >/dev/null || return 1
        npm install -g --no-fund --no-audit maildev@3 >/dev/null
      fi
      local smtp="${2:-1025}" web="${3:-1080}"
      local dir="${4:-${TMPDIR:-/tmp}/roster-maildev}" log="${5:-${TMPDIR:-/tmp}/roster-maildev.log}"
      mkdir -p "$dir"
      nohup maildev --smtp "$smtp" --web "$web" --ip 127.0.0.1 --mail-directory "$dir" \
        >"$log" 2>&1 &
      # shellcheck disable=SC2034 # read by the caller
      ROSTER_STARTED_PID=$!
      ;;
    *) return 1 ;;
  esac
}
