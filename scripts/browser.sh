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
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium for the console's browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "browser: no Chromium at $CHROMIUM. Install it (as root: apt-get install chromium) or point" \
    "TEAMSCONNECT_CHROMIUM at one; the console's browser tests need it." >&2
  exit 1
fi
