#!/bin/sh
# Install (as root) or check (as a plain user) the Debian packages eximpy
# needs.  Usage: tools/setup_system.sh build|test
#   build: what `make run` needs (headers to build python-prctl and the
#          berkeleydb module that reads Exim's dbm files)
#   test:  what `make test` needs on top (real Exim as the oracle, swaks, ...)
set -eu
what=${1:-build}

BUILD_PKGS="libcap-dev libdb5.3-dev"
TEST_PKGS="exim4-daemon-heavy exim4-doc-info swaks dnsmasq-base dovecot-core
  clamav-daemon spamd"

pkgs=$BUILD_PKGS
[ "$what" = test ] && pkgs="$BUILD_PKGS $TEST_PKGS"

# The roles of a root-started daemon run as this user (exim_user's default).
if [ "$(id -u)" = 0 ] && ! getent passwd eximpy >/dev/null; then
  useradd --system --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin --user-group eximpy
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "eximpy: missing Debian packages:$missing (install them with: sudo apt-get install$missing)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Never let a package start a daemon here (Exim would take port 25).
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=yes
fi
stamp=/var/lib/apt/periodic/eximpy-update-stamp
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
  apt-get update -qq
  mkdir -p "$(dirname "$stamp")"; touch "$stamp"
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ "$created_policy" = yes ] && rm -f "$policy"
exit 0
