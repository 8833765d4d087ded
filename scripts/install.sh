#!/usr/bin/env bash
# Install what iipy needs on Debian (12 or later).
#   scripts/install.sh          the server alone, into ./.venv (editable: for development)
#   scripts/install.sh test     also the real components the tests start: lighttpd,
#                               Apache with mod_fcgid, nginx, memcached, Debian's iipsrv 1.1
#   scripts/install.sh bench    as test, plus wrk for benchmarks/run.py
#   scripts/install.sh --prefix /opt/iipy [--bindir /usr/local/bin]
#                               production: a virtual environment at the prefix with iipy
#                               installed from this tree (not editable: the clone can be
#                               deleted afterwards) and `iipy` linked into --bindir, the path
#                               the shipped configurations use (`iipy config NAME` prints them);
#                               DIR/fcgi-bin/iipsrv.fcgi for Debian's iipimage-server config
# Uses sudo for apt-get when not run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="" prefix="" bindir="/usr/local/bin"
while [ $# -gt 0 ]; do
  case "$1" in
    test|bench) mode="$1" ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift ;;
    --prefix=*) prefix="${1#--prefix=}" ;;
    --bindir) bindir="${2:?--bindir needs a directory}"; shift ;;
    --bindir=*) bindir="${1#--bindir=}" ;;
    *) echo "usage: $0 [test|bench] | --prefix DIR [--bindir DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$prefix" ] && [ -n "$mode" ]; then
  echo "$0: --prefix installs the server alone; use test/bench in a clone" >&2; exit 2
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# gcc, python3-dev: build iipy.jpeg._dctsplice, the C part of watermarked JPEG tiles (iipy
# installs and runs without it, warning at start-up, but every marked tile is then decoded and
# re-encoded)
packages="python3 python3-venv python3-pip python3-dev gcc libopenjp2-7"
# libmemcached-dev, zlib1g-dev: build pylibmc, the memcached client (MEMCACHED_SERVERS)
packages="$packages libmemcached-dev zlib1g-dev"
if [ "$mode" = "test" ] || [ "$mode" = "bench" ]; then
  # libmagic1: python-magic, imported by the IIIF validator; strace: the hostile paths
  # table watches which files a real backend opens
  packages="$packages lighttpd apache2 libapache2-mod-fcgid iipimage-server libopenjp2-tools libmagic1 strace"
  # systemd-analyze: tests/test_systemd.py rates and verifies conf/iipy.service
  packages="$packages systemd"
  # tests/test_browser.py (selenium) and tests/test_tools_static.py (Playwright): Debian's
  # Chromium and its driver; npm fetches the viewers (Debian's
  # npm only where no npm is installed: it conflicts with other Node.js installations)
  packages="$packages chromium chromium-driver"
  command -v npm >/dev/null || packages="$packages npm"
  # tests/test_logs.py runs the shipped logrotate snippet
  packages="$packages logrotate"
  # clang: tests/test_fuzz.py builds a coverage-instrumented copy of _dctsplice for atheris
  packages="$packages clang"
  # Debian's nginx and memcached: the nginx front end and the shared cache (tests start them)
  packages="$packages nginx-light memcached"
fi
if [ "$mode" = "bench" ]; then packages="$packages wrk"; fi
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  $sudo apt-get update -qq -o DPkg::Lock::Timeout=900
  # No services started by package scripts (the tests start their own on free ports): a
  # policy-rc.d that refuses, for the duration of apt-get only. An existing one (a container's,
  # an administrator's) is put back afterwards, also when apt-get fails.
  policy="${IIPY_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
  saved=""
  if [ -e "$policy" ]; then
    saved="$(mktemp "${TMPDIR:-/tmp}/policy-rc.d.XXXXXX")"
    $sudo cp -p "$policy" "$saved"
  fi
  restore_policy() {
    if [ -n "$saved" ]; then
      $sudo cp -p "$saved" "$policy" && rm -f "$saved"
    else
      $sudo rm -f "$policy"
    fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -o DPkg::Lock::Timeout=900 -y -qq --no-install-recommends $missing
  restore_policy
  trap - EXIT
fi

# Debian's interpreter, not one under a user's home: web servers run FastCGI children as
# another user (Apache: www-data), who must be able to execute it.
python=/usr/bin/python3
[ -x "$python" ] || python=python3

if [ -n "$prefix" ]; then
  [ -x "$prefix/bin/python" ] || $sudo "$python" -m venv "$prefix"
  $sudo "$prefix/bin/python" -m pip install -q --upgrade pip
  # a fresh copy of the tree: a build never writes into the clone, and the result does not
  # point back at it
  $sudo "$prefix/bin/python" -m pip install -q --upgrade --force-reinstall --no-deps .
  $sudo "$prefix/bin/python" -m pip install -q .
  $sudo mkdir -p "$bindir" "$prefix/fcgi-bin"
  $sudo ln -sfn "$prefix/bin/iipy" "$bindir/iipy"
  # Debian's iipimage-server Apache configuration runs <ScriptAlias dir>/iipsrv.fcgi: point
  # its ScriptAlias at this directory and nothing else changes (README, "Replacing iipsrv")
  $sudo ln -sfn ../bin/iipy "$prefix/fcgi-bin/iipsrv.fcgi"
  echo "installed: $("$prefix/bin/iipy" --version) at $prefix; $bindir/iipy -> $prefix/bin/iipy"
  echo "configurations: iipy config (lists them), e.g. iipy config systemd"
  exit 0
fi

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
  # the viewers tests/test_browser.py opens, as npm publishes them (not committed)
  mkdir -p .browser
  for pkg in openseadragon@6.1.1 mirador@4.0.0; do
    name="${pkg%@*}"
    if [ ! -d ".browser/$name" ]; then
      (cd .browser && npm pack --silent "$pkg" >/dev/null && mkdir "$name.tmp" \
        && tar xzf "$name"-*.tgz -C "$name.tmp" --strip-components=1 && rm "$name"-*.tgz \
        && mv "$name.tmp" "$name")
    fi
  done
  # OpenSeadragon from the npm registry, for the browser test of `iipy static` trees
  osd=.venv/share/openseadragon
  if [ ! -f "$osd/openseadragon.min.js" ]; then
    mkdir -p "$osd" && (cd "$osd" && npm pack -q openseadragon@6.1.1 >/dev/null &&
      tar xzf openseadragon-6.1.1.tgz package/build/openseadragon/openseadragon.min.js &&
      mv package/build/openseadragon/openseadragon.min.js . && rm -r package openseadragon-6.1.1.tgz)
  fi
fi
