# Sourced by .ci/run (bash, as root, on a fresh machine): installs
# PostgreSQL, MariaDB and Redis (whose tests start their own server), starts one server of each on loopback, creates a
# database in each and exports the DSNs the tests read:
#   EXPORT_TEST_POSTGRES_DSN, EXPORT_TEST_MYSQL_DSN
# It can be sourced by hand too; servers already running are reused.

ci_db_root=${CI_DB_ROOT:-/tmp/export-ci-db}
pg_port=55432
my_port=53306

ci_install_databases() {
  local need=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  # Redis for examples/redislimit, whose tests start their own server.
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq
    # The packages try to start their own services; a container without
    # an init system refuses that, harmlessly: the servers below are ours.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
  fi
}

ci_start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local data=$ci_db_root/pg
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p $pg_port; then
    rm -rf "$data"; mkdir -p "$data"; chown -R postgres: "$data"
    # An ICU default collation, as production databases often have: the
    # export must still order IDs in byte order (COLLATE "C").
    su postgres -c "'$bin/initdb' -D '$data' -A trust -U postgres -E UTF8 --locale=C.UTF-8 --locale-provider=icu --icu-locale=en-US" >/dev/null
    su postgres -c "'$bin/pg_ctl' -D '$data' -l '$data/log' -w -o '-p $pg_port -k $data -c listen_addresses=127.0.0.1 -c fsync=off' start" >/dev/null
  fi
  psql -q -h 127.0.0.1 -p $pg_port -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'export_test'" | grep -q 1 ||
    psql -q -h 127.0.0.1 -p $pg_port -U postgres -c "CREATE DATABASE export_test"
  export EXPORT_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:$pg_port/export_test?sslmode=disable"
  echo "PostgreSQL: $(psql -h 127.0.0.1 -p $pg_port -U postgres -tAc "SELECT version()" | cut -d, -f1);" \
    "default collation: $(psql -h 127.0.0.1 -p $pg_port -U postgres -d export_test -tAc "SELECT datlocprovider::text || ' ' || coalesce(daticulocale, datcollate) FROM pg_database WHERE datname = current_database()")"
}

ci_start_mariadb() {
  local dir=$ci_db_root/mariadb
  local data=$dir/data sock=$dir/mysqld.sock
  local server=mariadbd
  command -v mariadbd >/dev/null 2>&1 || server=/usr/sbin/mariadbd
  if ! mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1; then
    rm -rf "$dir"; mkdir -p "$data"; chown -R mysql: "$dir"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket >"$dir/install.log" 2>&1 ||
      { cat "$dir/install.log"; return 1; }
    "$server" --user=mysql --datadir="$data" --socket="$sock" --port=$my_port --bind-address=127.0.0.1 \
      --pid-file="$dir/mysqld.pid" --log-error="$dir/mysqld.log" --innodb-flush-log-at-trx-commit=0 >/dev/null 2>&1 &
    for _ in $(seq 1 60); do
      mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1 && break
      sleep 0.5
    done
    mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1 || { cat "$dir/mysqld.log"; return 1; }
  fi
  # The tests create a database of their own per run, so the user may.
  mariadb --socket="$sock" -uroot -e "
    CREATE DATABASE IF NOT EXISTS export_test CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'export'@'127.0.0.1' IDENTIFIED BY 'export';
    GRANT ALL ON *.* TO 'export'@'127.0.0.1';"
  export EXPORT_TEST_MYSQL_DSN="export:export@tcp(127.0.0.1:$my_port)/export_test"
  echo "MariaDB: $(mariadb --socket="$sock" -uroot -NBe 'SELECT VERSION()')"
}

ci_install_databases
mkdir -p "$ci_db_root"
ci_start_postgres
ci_start_mariadb
