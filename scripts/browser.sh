#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the console's browser tests (tests/console/test_browser.py,
# Playwright with executable_path=/usr/bin/chromium). Nothing downloads a browser at run time: Playwright's
# own browser builds are never installed. As root it installs the `chromium` package when missing;
# otherwise it says what to run.
set -u
CHROMIUM=${TEAMSCONNECT_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
install_chromium() {
  [ -x "$CHROMIUM" ] && return 0  # another run installed it while this one waited for the lock
  echo "browser: installing Debian's chromium for the console's browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Another apt (not ours) may hold dpkg's lock: wait for it rather than fail.
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
  "${apt[@]}" install chromium >/dev/null 2>&1 || { "${apt[@]}" update && "${apt[@]}" install chromium; }
}
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  # Two `make test` runs started at once on a fresh machine: one installs, the other waits for it.
  if command -v flock >/dev/null 2>&1; then
    exec 9>/tmp/teamsconnect-browser-install.lock
    flock -w 900 9 || echo "browser: gave up waiting for another run's install after 900 s" >&2
  fi
  install_chromium
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "browser: no Chromium at $CHROMIUM. Install it (as root: apt-get install chromium) or point" \
    "TEAMSCONNECT_CHROMIUM at one; the console's browser tests need it." >&2
  exit 1
fi
