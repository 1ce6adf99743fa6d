#!/usr/bin/env bash
# Makes sure the local services the test suites use are up on their standard loopback ports:
# Redis (6379), PostgreSQL (5432, trust auth, database `test`), MariaDB (3306, root, database `test`).
# Starts a service that is down; installs it with apt if it is missing. Exits non-zero if any
# service cannot be brought up: a backend suite must fail, never skip.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  apt-get install -y -qq "$@" >&2
}

wait_for() { # name, check command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 && psql -h 127.0.0.1 -U postgres -d test -c 'select 1' ; }
maria_up() { mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping && mariadb -h 127.0.0.1 -uroot -e 'select 1' test; }

ensure_redis() {
  redis_up >/dev/null 2>&1 && { log "redis is up"; return; }
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
  wait_for redis redis_up
}

ensure_postgres() {
  pg_up >/dev/null 2>&1 && { log "postgresql is up"; return; }
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_for "postgresql (server)" pg_isready -q -h 127.0.0.1 -p 5432
  # The database `test` with trust auth is how the machine comes; recreate it if missing.
  su postgres -c "psql -tAc \"select 1 from pg_database where datname = 'test'\"" | grep -q 1 \
    || su postgres -c "createdb test" >&2
  wait_for postgresql pg_up
}

ensure_mariadb() {
  maria_up >/dev/null 2>&1 && { log "mariadb is up"; return; }
  command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2 || true
  wait_for "mariadb (server)" mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping
  mariadb -h 127.0.0.1 -uroot -e 'create database if not exists test' >&2
  wait_for mariadb maria_up
}

# Tools the test harnesses call: redis-cli (cluster creation, fault injection), openssl (the
# Redis TLS test's certificates), pgrep (finding a Redis save child).
command -v openssl >/dev/null || apt_install openssl
command -v pgrep >/dev/null || apt_install procps
command -v curl >/dev/null || apt_install curl

ensure_redis
ensure_postgres
ensure_mariadb

# The suites find the services through these (scripts that source this file get them exported).
export TESSERA_TEST_REDIS_URL=${TESSERA_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export TESSERA_TEST_PG_URL=${TESSERA_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export TESSERA_TEST_MYSQL_URL=${TESSERA_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
