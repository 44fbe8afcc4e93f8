#!/usr/bin/env bash
# A local imhub cluster on loopback: one Redis, three hubs and HAProxy in
# front of them, and a stand-in for the app's own backend that the hubs
# forward the app's callbacks to. Everything it starts keeps its pid and log
# in $CLUSTER_DIR, and `down` stops only those.
#
#   deploy/local/cluster.sh up          # start (builds bin/hub if missing)
#   deploy/local/cluster.sh restart N   # drain hub N (1..3) with SIGTERM, start it again
#   deploy/local/cluster.sh status
#   deploy/local/cluster.sh sample      # a curl of a sample callback through the load balancer, signed now
#   deploy/local/cluster.sh down
#
# Settings: LB_ADDR (127.0.0.1:8080), HUB_PORT_BASE (8081), CLUSTER_DIR
# (.cluster in the repository), HUBS (3), APP (1400000000), JWT_SECRET (32 bytes or more),
# DRAIN (5s), REDIS_URL (the hubs' -redis; when set, no Redis is started:
# for example a redis+cluster:// URL of a Redis Cluster of your own),
# CALLBACK_TOKEN (the app's callback token, local-cluster-callback-token;
# empty: none), FORWARD (where the hubs forward the app's callbacks; by
# default the demo backend, bin/hubdemo -backend, started on BACKEND_ADDR,
# 127.0.0.1:9090, its log in backend.log; a URL of your own backend, then no
# demo backend is started; off: no forwarding), IM (on: each hub runs the
# stand-in of the IM's REST API, -dev-im, its groups in the cluster's Redis,
# so that membership and the demo UserSigs of /dev/usersig hold on every
# hub; off: none, the app's groups are the tokens' alone). Give restart the
# settings given to up.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
lb=${LB_ADDR:-127.0.0.1:8080}
base=${HUB_PORT_BASE:-8081}
hubs=${HUBS:-3}
app=${APP:-1400000000}
secret=${JWT_SECRET:-local-cluster-secret-change-me-local-cluster}
drain=${DRAIN:-5s}
hub=${HUB_BIN:-$root/bin/hub}
redis_url=${REDIS_URL:-unix://$dir/redis.sock}
# Set but empty means the app has no callback token.
token=${CALLBACK_TOKEN-local-cluster-callback-token}
backend_addr=${BACKEND_ADDR:-127.0.0.1:9090}
hubdemo=${HUBDEMO_BIN:-$root/bin/hubdemo}
forward=${FORWARD:-http://$backend_addr/}
# The demo backend runs only when the hubs forward to it.
demo_backend=$([ -z "${FORWARD:-}" ] && echo yes || echo no)
apps=$app${token:+:$token}
im=${IM:-on}

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

wait_http() { # url, seconds
  for _ in $(seq 1 $(( $2 * 20 ))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "cluster: $1 did not answer within $2s" >&2
  return 1
}

start_backend() {
  [ "$demo_backend" = yes ] || return 0
  running backend && return
  "$hubdemo" -backend "$backend_addr" -app "$app" -token "$token" >>"$dir/backend.log" 2>&1 &
  echo $! >"$dir/backend.pid"
  for _ in $(seq 1 600); do
    running backend || break
    # A bare connection, not a request, which the backend would log.
    (exec 3<>"/dev/tcp/${backend_addr%:*}/${backend_addr##*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "cluster: the demo backend did not start on $backend_addr:" >&2
  tail -n 3 "$dir/backend.log" >&2
  exit 1
}

start_redis() {
  [ -n "${REDIS_URL:-}" ] && return
  running redis && return
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction --save "" \
    --daemonize no --loglevel warning >>"$dir/redis.log" 2>&1 &
  echo $! >"$dir/redis.pid"
  for _ in $(seq 1 200); do [ -S "$dir/redis.sock" ] && return; sleep 0.05; done
  echo "cluster: redis did not start, see $dir/redis.log" >&2; exit 1
}

start_hub() { # n
  local n=$1 port=$((base + $1 - 1))
  running "hub$n" && return
  mkdir -p "$dir/spool$n"
  # Every client reaches the hubs from loopback, through HAProxy: one
  # client address, so the per-address limit is lifted.
  local fwd=() devim=()
  [ "$forward" = off ] || fwd=(-forward "$app=$forward")
  [ "$im" = off ] || devim=(-dev-im)
  "$hub" -dev "${devim[@]}" -addr "127.0.0.1:$port" -node "hub-$n" -redis "$redis_url" \
    -apps "$apps" "${fwd[@]}" -jwt-secret "$secret" -drain "$drain" -spool-dir "$dir/spool$n" \
    -max-conns-per-ip 100000 -log-format json >>"$dir/hub$n.log" 2>&1 &
  echo $! >"$dir/hub$n.pid"
  wait_http "http://127.0.0.1:$port/readyz" 30
}

servers() { # the hubs, as HAProxy server lines
  for n in $(seq 1 "$hubs"); do
    echo "  server hub$n 127.0.0.1:$((base + n - 1)) check"
  done
}

start_haproxy() {
  running haproxy && return
  {
    cat <<CFG
global
  # Each proxied connection takes two file descriptors.
  maxconn ${LB_MAXCONN:-9000}
  log stderr format short local0 warning

defaults
  mode http
  log global
  option dontlognull
  timeout connect 5s
  # An SSE stream (/sse) stays a plain HTTP response: these apply to it,
  # as inactivity, and the hub's comment line every 25s keeps it inside.
  timeout client 60s
  timeout server 60s
  # WebSockets live long: once upgraded, only this applies. The hub pings
  # silent clients every 25s, well inside it.
  timeout tunnel 1h
  timeout client-fin 5s
  timeout http-request 10s

frontend imhub
  bind $lb
  # Callbacks go to any live hub, ready or not: a hub whose Redis is away
  # fails /readyz but still spools callbacks, which must reach it.
  acl callback path_beg /im/callback
  use_backend callbacks if callback
  default_backend hubs

backend callbacks
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 500ms fall 1 rise 2
CFG
    servers
    cat <<CFG

backend hubs
  balance leastconn
  # A hub that is draining fails /readyz at once: it gets no new clients,
  # and its sessions are closed by the hub itself, with 1012, over -drain
  # (no shutdown-sessions here, which would cut them all at once).
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500ms fall 1 rise 2
CFG
    servers
  } >"$dir/haproxy.cfg"
  haproxy -f "$dir/haproxy.cfg" -db >>"$dir/haproxy.log" 2>&1 &
  echo $! >"$dir/haproxy.pid"
  wait_http "http://$lb/healthz" 30
}

# sample_curl prints a curl that posts a sample group message callback
# through the load balancer: signed, when the app has a callback token, as
# the IM signs (Sign = lowercase hex SHA-256 of token and RequestTime), with
# a RequestTime of now. Its MsgSeq is the time too, so that each sample is
# a new message, not a retry the hubs would publish once.
sample_curl() {
  local query="SdkAppid=$app&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web"
  local now sign
  now=$(date +%s)
  if [ -n "$token" ]; then
    sign=$(printf '%s%s' "$token" "$now" | sha256sum | cut -d' ' -f1)
    query="$query&RequestTime=$now&Sign=$sign"
    echo "Post a sample group message callback (signed with the callback token; the hubs take it for 60s, then run deploy/local/cluster.sh sample for a fresh one):"
  else
    echo "Post a sample group message callback (the app has no callback token, so it is not signed):"
  fi
  cat <<CURL

  curl -sS -X POST 'http://$lb/im/callback?$query' \\
    -H 'Content-Type: application/json' \\
    -d '{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"jared","Operator_Account":"admin","Random":$RANDOM,"MsgSeq":$now,"MsgTime":$now,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hello from the cluster"}}]}'

CURL
}

stop() { # name
  running "$1" || { rm -f "$dir/$1.pid"; return 0; }
  local pid
  pid=$(cat "$dir/$1.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$dir/$1.pid"
}

case ${1:-} in
up)
  # The hubs run in -dev mode, whose /dev/token mints tokens for anyone:
  # the load balancer must not be reachable from elsewhere.
  case ${lb%:*} in
    127.*|localhost|\[::1\]) ;;
    *) echo "cluster: LB_ADDR $lb is not a loopback address; this demo cluster serves /dev/token" >&2; exit 2 ;;
  esac
  for cmd in redis-server haproxy curl; do
    command -v $cmd >/dev/null || { echo "cluster: $cmd is missing: apt-get install -y ${cmd/curl/curl}" >&2; exit 1; }
  done
  [ -x "$hub" ] || (cd "$root" && make build >/dev/null)
  if [ "$demo_backend" = yes ] && [ ! -x "$hubdemo" ]; then
    (cd "$root" && go build -trimpath -o "$hubdemo" ./cmd/hubdemo)
  fi
  mkdir -p "$dir"
  start_redis
  start_backend
  for n in $(seq 1 "$hubs"); do start_hub "$n"; done
  start_haproxy
  echo "imhub cluster is up: http://$lb/ (hubs on 127.0.0.1:$base…, logs and pids in $dir)"
  case $forward in
  off) ;;
  *) echo "app $app's callbacks are forwarded to $forward${token:+ (callback token $token)}" ;;
  esac
  if [ "$demo_backend" = yes ]; then echo "the demo backend logs them in $dir/backend.log"; fi
  if [ "$im" != off ]; then
    echo "the hubs follow the IM's membership through a stand-in of its REST API: sign in with a UserSig of http://$lb/dev/usersig?userid=jared"
  fi
  echo
  sample_curl
  ;;
sample)
  sample_curl
  ;;
restart)
  n=${2:?which hub, 1..$hubs}
  stop "hub$n"
  start_hub "$n"
  ;;
status)
  for name in redis backend $(for n in $(seq 1 "$hubs"); do echo "hub$n"; done) haproxy; do
    if running "$name"; then echo "$name running (pid $(cat "$dir/$name.pid"))"; else echo "$name stopped"; fi
  done
  ;;
down)
  stop haproxy
  for n in $(seq 1 "$hubs"); do stop "hub$n"; done
  # After the hubs, which deliver queued forwards until they stop.
  stop backend
  stop redis
  echo "imhub cluster is down"
  ;;
*)
  sed -n '2,25p' "$0" >&2
  exit 2
  ;;
esac
