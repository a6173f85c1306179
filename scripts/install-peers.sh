#!/usr/bin/env bash
# Installs the peer programs that benchmarks and tests run against (nginx, haproxy, wrk, ...) from
# Debian packages, only when a binary is missing, and never leaves a system service running.
#
#   scripts/install-peers.sh nginx haproxy wrk
#   scripts/install-peers.sh clickhouse-server syslog-ng   (npm test runs this for the log role's tests)
#   scripts/install-peers.sh kubectl iptables ip           (and this for the Kubernetes tests)
#
# Idempotent: with every binary present it installs nothing and touches no package index. It also
# stops any daemon the packages started on their default ports (a distribution nginx or haproxy on
# :80 would otherwise compete with the benchmark for CPU and ports).
set -euo pipefail

# Binary -> Debian package. Add a line to support a new peer (e.g. [syslog-ng]=syslog-ng-core), and
# add its name to DAEMONS below if its package starts a system service.
declare -A PACKAGE_OF=(
  [nginx]=nginx-light
  [haproxy]=haproxy
  [wrk]=wrk
  [h2load]=nghttp2-client
  [openssl]=openssl
  [taskset]=util-linux
  [clickhouse-server]=clickhouse-server
  [syslog-ng]=syslog-ng-core
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [iptables]=iptables
  [ip]=iproute2
  [kubectl]=kubernetes-client
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
)

# Daemons a package may start on install; any system instance is stopped afterwards.
DAEMONS=(nginx haproxy clickhouse-server)

die() {
  echo "install-peers: $*" >&2
  exit 1
}

if [[ $# -eq 0 ]]; then
  echo "usage: $0 BINARY..." >&2
  echo "known binaries: ${!PACKAGE_OF[*]}" >&2
  exit 2
fi

# Binaries in /usr/sbin are not on every user's PATH.
have() {
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || [[ -x "/sbin/$1" ]]
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  fi
fi

# Prints the pids of system nginx/haproxy daemons: those named in the packages' pid files, those
# run from the packages' config files, and any nginx/haproxy listening on :80 or :443. Peers that
# benchmarks and tests start (with their own -c/-f config under a temp dir, on other ports) are
# not matched.
system_daemons() {
  local name pid args
  {
    for name in "${DAEMONS[@]}"; do
      for pidfile in "/run/$name.pid" "/var/run/$name.pid"; do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ "$pid" =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == "$name" ]]; then
          echo "$pid"
        fi
      done
      for pid in $(pgrep -x "$name" 2>/dev/null || true); do
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        # The Debian nginx runs without -c (its built-in /etc/nginx/nginx.conf); haproxy gets -f.
        if [[ "$args" == *"/etc/$name/"* || ("$name" == nginx && "$args" == *"master process"* && "$args" != *" -c "*) ]]; then
          echo "$pid"
        fi
      done
    done
    if command -v ss >/dev/null 2>&1; then
      "${SUDO[@]}" ss -Hltnp '( sport = :80 or sport = :443 )' 2>/dev/null |
        grep -E '"(nginx|haproxy)"' | grep -oE 'pid=[0-9]+' | cut -d= -f2 || true
    fi
  } | sort -un
}

stop_system_daemons() {
  local pids pid name
  pids=$(system_daemons)
  [[ -n "$pids" ]] || return 0
  for name in "${DAEMONS[@]}"; do
    if [[ -x "/etc/init.d/$name" ]] && command -v service >/dev/null 2>&1; then
      "${SUDO[@]}" service "$name" stop >/dev/null 2>&1 || true
    fi
  done
  for pid in $(system_daemons); do
    echo "install-peers: stopping system $(cat "/proc/$pid/comm" 2>/dev/null || echo daemon) (pid $pid)" >&2
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 5))
  while ((SECONDS < deadline)); do
    [[ -n "$(system_daemons)" ]] || return 0
    sleep 0.2
  done
  for pid in $(system_daemons); do
    "${SUDO[@]}" kill -9 "$pid" 2>/dev/null || true
  done
  sleep 0.5
  if [[ -n "$(system_daemons)" ]]; then
    die "a system nginx/haproxy is still running ($(system_daemons | tr '\n' ' ')); stop it by hand (ss -ltnp)"
  fi
}

missing=()
for bin in "$@"; do
  if have "$bin"; then
    continue
  fi
  pkg=${PACKAGE_OF[$bin]:-}
  [[ -n "$pkg" ]] || die "no Debian package known for '$bin'; add it to PACKAGE_OF in $0"
  missing+=("$pkg")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    die "missing ${missing[*]}; run as root or with passwordless sudo to install them"
  fi

  # policy-rc.d exiting 101 tells invoke-rc.d not to start services during the install. Keep any
  # existing one and put it back afterwards.
  POLICY=/usr/sbin/policy-rc.d
  BACKUP=""
  if [[ -e "$POLICY" ]]; then
    BACKUP=$(mktemp)
    cp -p "$POLICY" "$BACKUP"
  fi
  restore_policy() {
    if [[ -n "$BACKUP" ]]; then
      "${SUDO[@]}" cp -p "$BACKUP" "$POLICY"
      rm -f "$BACKUP"
    else
      "${SUDO[@]}" rm -f "$POLICY"
    fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"

  echo "install-peers: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    die "apt-get update failed"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" ||
    die "could not install ${missing[*]} (see apt-get's output above)"

  for bin in "$@"; do
    have "$bin" || die "installed ${PACKAGE_OF[$bin]:-?} but '$bin' is still not found"
  done
fi

# Always run: a package installed earlier (by hand or by another tool) may have left its daemon up.
stop_system_daemons
