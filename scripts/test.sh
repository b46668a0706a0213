#!/usr/bin/env bash
# The whole test suite, as the README's quickstart runs it. Installs what the tests need on a
# fresh Debian machine with Rust and Python 3, then runs every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# kubectl drives the simulator in one end-to-end test; install Debian's if none is present.
if ! command -v kubectl >/dev/null 2>&1; then
  log "installing kubectl (Debian package kubernetes-client)"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null \
      || echo "warning: could not install kubectl; the kubectl test will be skipped"
  else
    echo "warning: kubectl missing and apt-get unavailable; the kubectl test will be skipped"
  fi
fi

# The email tests run a real SMTP server (aiosmtpd from PyPI, notifiers/tests/smtp/server.py)
# from a venv under target/; the tests find it through HERALD_TEST_PYTHON and fail without it.
if ! target/pyenv/bin/python -c 'import aiosmtpd' >/dev/null 2>&1; then
  log "installing aiosmtpd into target/pyenv (SMTP server for the email tests)"
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
  fi
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install -q aiosmtpd
fi
export HERALD_TEST_PYTHON="$PWD/target/pyenv/bin/python"
# The e2e email test makes its CA with the openssl CLI (Debian: package openssl).
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

log "one TLS provider: ring must not be in the dependency tree"
tree=$(cargo tree --workspace --target all -e normal,build,dev -i ring 2>/dev/null || true)
if printf '%s\n' "$tree" | grep -q '^ring v'; then
  printf '%s\n' "$tree"
  echo "error: ring entered the dependency tree (use aws-lc-rs only)" >&2
  exit 1
fi
echo "ok: ring is not in the tree"

log "tests"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo test --workspace --doc 2>&1 | tee -a "$out" || status=1
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee -a "$out" || status=1

# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$out"
exit "$status"
