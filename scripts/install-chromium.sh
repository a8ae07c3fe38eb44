#!/usr/bin/env bash
# Installs Chromium from Debian's archive for the report's browser test
# (MXSIM_BROWSER=1 cargo test --test it report_browser). Needs root (or sudo) and apt.
# Prints the path of the browser on success.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node is needed to drive Chromium (apt-get install nodejs)" >&2
  exit 1
fi
command -v chromium
