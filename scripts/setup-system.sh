#!/usr/bin/env bash
# Installs the Debian packages Spendwall builds and tests against, only when missing.
# chromium and chromium-driver run the panel's browser tests (tests/panel). Uses sudo when not root. Safe to run repeatedly.
set -euo pipefail

# postgresql: team mode's tests and bench start a real server on a temp data dir.
packages=(libsqlite3-dev libcurl4-openssl-dev libsystemd-dev zlib1g-dev systemd python3-venv node-typescript curl git
  chromium chromium-driver postgresql)
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
