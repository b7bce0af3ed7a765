#!/usr/bin/env bash
# Installs the Debian packages Spendwall needs, only when missing. Uses sudo when not root. Safe to
# run repeatedly.
#   setup-system.sh          what building and running the daemon needs
#   setup-system.sh --test   that, plus what the test suites start: python3-venv and node-typescript
#                            (the SDK suites), git (sessions' scratch repositories), chromium and
#                            chromium-driver (the panel's browser tests), postgresql (team mode's
#                            tests and bench start a real server on a temp data dir)
set -euo pipefail

packages=(libsqlite3-dev libcurl4-openssl-dev libsystemd-dev zlib1g-dev systemd curl)
if [ "${1:-}" = "--test" ]; then
  packages+=(python3-venv node-typescript git chromium chromium-driver postgresql)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
