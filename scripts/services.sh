#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis that the tests talk to are running on 127.0.0.1.
# Starts them if they are installed but stopped; says plainly what is missing otherwise.
set -u
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
fi
ok=0
pg_up || { echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started." \
  "Install it (apt-get install postgresql) or point TEAMSCONNECT_TEST_DATABASE_URL at one." >&2; ok=1; }
redis_up || { echo "services: Redis is not reachable on 127.0.0.1:6379 and could not be started." \
  "Install it (apt-get install redis-server) or point TEAMSCONNECT_TEST_REDIS_URL at one." >&2; ok=1; }
exit $ok
