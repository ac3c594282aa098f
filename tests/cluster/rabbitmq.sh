#!/usr/bin/env bash
# A three-node RabbitMQ cluster of its own on this machine, beside (never touching) a
# broker on 5672: nodes roster-c1..3@localhost, AMQP on 127.0.0.1:$PORT+1..3 (guest/guest),
# Erlang distribution on $DIST+1..3, everything under DIR.
#
#   bash tests/cluster/rabbitmq.sh start DIR   # up in ~25 s; prints the three AMQP URLs
#   bash tests/cluster/rabbitmq.sh stop DIR    # stops every node and removes DIR
#
# PORT defaults to 5790 (ROSTER_CLUSTER_PORT), DIST to 25790 (ROSTER_CLUSTER_DIST_PORT).
# Needs rabbitmq-server (Debian's package; 3.10 or later). As root the nodes run as the
# user rabbitmq, as the package's scripts do. The e2e test `cluster` runs this.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
port="${ROSTER_CLUSTER_PORT:-5790}"
dist="${ROSTER_CLUSTER_DIST_PORT:-25790}"
node() { echo "roster-c$1@localhost"; }

for tool in rabbitmq-server rabbitmqctl; do
  command -v "$tool" >/dev/null || {
    echo "$tool is not installed: the cluster test starts three RabbitMQ nodes of its own (Debian: apt-get install rabbitmq-server)" >&2
    exit 3
  }
done

stop_all() {
  for i in 1 2 3; do
    # `stop` waits for the node to be gone; a node that is not running is fine.
    (timeout 60 rabbitmqctl -q -n "$(node "$i")" stop >/dev/null 2>&1 || true) &
  done
  wait
  rm -rf "$dir"
}

case "$cmd" in
  stop)
    stop_all
    ;;
  start)
    stop_all # whatever a crashed run left behind
    mkdir -p "$dir"
    for i in 1 2 3; do
      # A config file of its own per node: /etc/rabbitmq/rabbitmq.conf pins the listener
      # to 5672 and would win over RABBITMQ_NODE_PORT.
      printf 'listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n' $((port + i)) >"$dir/c$i.conf"
      echo '[].' >"$dir/plugins$i"
    done
    [ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq "$dir"
    for i in 1 2 3; do
      env RABBITMQ_NODENAME="$(node "$i")" RABBITMQ_DIST_PORT=$((dist + i)) \
        RABBITMQ_MNESIA_BASE="$dir/m$i" RABBITMQ_LOG_BASE="$dir/l$i" \
        RABBITMQ_PID_FILE="$dir/p$i.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/plugins$i" \
        RABBITMQ_CONFIG_FILE="$dir/c$i.conf" \
        rabbitmq-server -detached
    done
    for i in 1 2 3; do
      # `-detached` returns before the node is reachable: `wait` waits for its pid file,
      # then for the broker to be up.
      timeout 120 rabbitmqctl -q -n "$(node "$i")" wait "$dir/p$i.pid" >/dev/null
    done
    # What the CLI says while nodes join (warnings about feature flags) goes to a file,
    # shown only if a step fails.
    trap 'echo "starting the cluster failed; the CLI said:" >&2; cat "$dir/cli.log" >&2' ERR
    for i in 2 3; do
      n="$(node "$i")"
      for step in stop_app reset "join_cluster $(node 1)" start_app; do
        # shellcheck disable=SC2086 # the step's words are meant to split
        rabbitmqctl -q -n "$n" $step >>"$dir/cli.log" 2>&1
      done
    done
    running="$(rabbitmqctl -q -n "$(node 1)" eval 'length(rabbit_nodes:all_running()).')"
    [ "$running" = 3 ] || { echo "the cluster has $running running nodes, not 3" >&2; exit 1; }
    for i in 1 2 3; do echo "amqp://guest:guest@127.0.0.1:$((port + i))/%2f"; done
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
