#!/usr/bin/env bash
# Install what iipy needs on Debian (12 or later) into ./.venv.
#   scripts/install.sh          the server alone
#   scripts/install.sh test     also the real components the tests start: lighttpd, nginx,
#                               Apache with mod_fcgid, Debian's iipsrv 1.1 (the reference)
#   scripts/install.sh bench    as test, plus wrk for benchmarks/run.py
# Uses sudo for apt-get when not run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# gcc, python3-dev: build iipy.jpeg._dctsplice, the C part of watermarked JPEG tiles (iipy
# installs and runs without it, but every marked tile is then decoded and re-encoded)
packages="python3 python3-venv python3-pip python3-dev gcc libopenjp2-7"
mode="${1:-}"
if [ "$mode" = "test" ] || [ "$mode" = "bench" ]; then
  # libmagic1: python-magic, imported by the IIIF validator; strace: the hostile paths
  # table watches which files a real backend opens
  packages="$packages lighttpd apache2 libapache2-mod-fcgid iipimage-server libopenjp2-tools libmagic1 strace"
  # clang: tests/test_fuzz.py builds a coverage-instrumented copy of _dctsplice for atheris
  packages="$packages clang"
fi
if [ "$mode" = "bench" ]; then packages="$packages wrk"; fi
# nginx: tests/test_keepalive.py (kept-alive FastCGI connections, fastcgi_keep_conn on)
if [ "$mode" = "test" ] || [ "$mode" = "bench" ]; then packages="$packages nginx"; fi
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  $sudo apt-get update -qq
  # no services started by package scripts: the tests start their own on free ports
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
  $sudo rm -f /usr/sbin/policy-rc.d
fi

# Debian's interpreter, not one under a user's home: web servers run FastCGI children as
# another user (Apache: www-data), who must be able to execute it.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extra=""
if [ "$mode" = "test" ] || [ "$mode" = "bench" ]; then extra="[test]"; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".$extra"
if [ -n "$extra" ]; then
  # iiif-validator 1.0.5 and iiif-validator-ng both install the package "iiif_validator";
  # whichever comes last overwrites the other's modules. The tests run 1.0.5's (the -ng
  # wheel contributes only validation_image.png, which 1.0.5 lacks), so put 1.0.5 on top.
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "iiif-validator==1.0.5"
fi
