#!/usr/bin/env bash
# Installs Mesa's Vulkan drivers (lavapipe, the CPU Vulkan driver percept runs on without a GPU).
# On Debian bookworm by default Mesa 25 from bookworm-backports (adding that source if missing;
# falling back to bookworm's own 22.3 when backports cannot be reached); PERCEPT_MESA=stable takes
# the distribution's own package instead, and on other systems that is what it takes. Mesa 25 is
# the default because it measured faster on a quiet AMD EPYC (BENCHMARKS.md, "Mesa 25 beside
# 22.3 on a quiet machine"): the SD U-Net step 1.2-1.4x, the VAE decode 1.4-1.5x, TAESD
# 1.1-1.4x; on the shared Intel Xeon it measured no different within the noise (BENCHMARKS.md,
# "Mesa 25.0 from bookworm-backports beside Debian's 22.3").
# Says which Mesa it got. Safe to run again: it does nothing when that Mesa is there.
# PERCEPT_SETUP_DRY_RUN=1 prints the commands that change the system instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."

dry="${PERCEPT_SETUP_DRY_RUN:-}"
sudo=""
if [ -z "$dry" ] && [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "percept: installing Mesa needs root (or sudo)" >&2; exit 1; }
  sudo="sudo"
fi
# Runs a command that changes the system (or prints it, in a dry run).
change() { if [ -n "$dry" ]; then echo "dry run: $*"; else $sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status} ${Version}' mesa-vulkan-drivers 2>/dev/null | sed -n 's/^install ok installed //p'; }
have_icd() { [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ]; }
report() { echo "setup: Mesa Vulkan drivers ${1:-$(installed)}${2:+ ($2)}"; }
# (an empty version: lavapipe is there but not from a Debian package)

codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" || codename=""
if [ "${PERCEPT_MESA:-backports}" = backports ] && [ "$codename" != bookworm ] && [ -n "${PERCEPT_MESA:-}" ]; then
  echo "setup: PERCEPT_MESA=backports is for Debian bookworm (this is '${codename:-unknown}'); using the distribution's Mesa"
fi
case "${PERCEPT_MESA:-backports}" in
  backports|stable) ;;
  *) echo "percept: PERCEPT_MESA=${PERCEPT_MESA}: expected backports or stable" >&2; exit 1 ;;
esac
if [ "$codename" = bookworm ] && [ "${PERCEPT_MESA:-backports}" = backports ]; then
  case "$(installed)" in
    *bpo*) report; exit 0 ;;
  esac
  sources=(/etc/apt/sources.list /etc/apt/sources.list.d/*)
  if ! grep -qs 'bookworm-backports' "${sources[@]}"; then
    echo "setup: adding Debian's bookworm-backports source (/etc/apt/sources.list.d/percept-bookworm-backports.sources)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /tmp/percept-bookworm-backports.sources
    change install -m 644 /tmp/percept-bookworm-backports.sources /etc/apt/sources.list.d/percept-bookworm-backports.sources
  fi
  echo "setup: installing mesa-vulkan-drivers from bookworm-backports"
  if change apt-get update -qq && DEBIAN_FRONTEND=noninteractive change apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers; then
    [ -n "$dry" ] && { report "from bookworm-backports" "dry run"; exit 0; }
    case "$(installed)" in
      *bpo*) report; exit 0 ;;
    esac
  fi
  echo "setup: bookworm-backports' Mesa could not be installed; using Debian's own"
fi

if have_icd; then
  report "$(installed)"
  exit 0
fi
echo "setup: installing mesa-vulkan-drivers"
change apt-get update -qq
DEBIAN_FRONTEND=noninteractive change apt-get install -y -qq mesa-vulkan-drivers
report "$( [ -n "$dry" ] && echo "(dry run)" || installed)"
