#!/usr/bin/env bash
# Unpacks bookworm-backports' Mesa Vulkan drivers (lavapipe, Mesa 25) into DIR without
# installing them (the system's Mesa and apt state stay as they are), for measuring side by
# side: `scripts/mesa-backports-private.sh DIR`, then per process
# `VK_ICD_FILENAMES=DIR/lvp_icd.json LD_LIBRARY_PATH=DIR/root/usr/lib/x86_64-linux-gnu CMD`
# (`. DIR/env.sh` sets both). `scripts/mesa-backports-private.sh DIR stable` unpacks bookworm's
# own Mesa 22.3 instead (for the other side when 25 is the system's). Debian bookworm on x86-64 only.
set -euo pipefail
usage="usage: scripts/mesa-backports-private.sh DIR [backports|stable]"
dir="$(realpath -m "${1:?$usage}")"
which="${2:-backports}"
case "$which" in
  backports|stable) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
mkdir -p "$dir"/apt/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d} "$dir/debs" "$dir/root"
key=/usr/share/keyrings/debian-archive-keyring.gpg
for suite in bookworm bookworm-updates bookworm-backports; do
  echo "deb [signed-by=$key] http://deb.debian.org/debian $suite main"
done > "$dir/apt/etc/sources.list"
opts=(-o "Dir::Etc::sourcelist=$dir/apt/etc/sources.list" -o "Dir::Etc::sourceparts=$dir/apt/etc/sources.list.d"
  -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
  -o "Dir::Etc::preferencesparts=$dir/apt/etc/preferences.d" -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -qq
if [ "$which" = stable ]; then
  (cd "$dir/debs" && apt-get "${opts[@]}" download mesa-vulkan-drivers/bookworm)
else
  # mesa-vulkan-drivers 25 needs libdrm >= 2.4.121, which only backports has.
  (cd "$dir/debs" && apt-get "${opts[@]}" download mesa-vulkan-drivers/bookworm-backports \
    libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports libdrm-common/bookworm-backports)
fi
for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir/root"; done
lib="$dir/root/usr/lib/x86_64-linux-gnu"
# (lvp_icd.json in Mesa 25, lvp_icd.x86_64.json in 22.3)
icd="$(ls "$dir"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -n 1)"
api="$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$icd")"
printf '{\n    "ICD": {\n        "api_version": "%s",\n        "library_path": "%s"\n    },\n    "file_format_version": "1.0.0"\n}\n' "$api" "$lib/libvulkan_lvp.so" > "$dir/lvp_icd.json"
printf 'export VK_ICD_FILENAMES=%s\nexport LD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$dir/lvp_icd.json" "$lib" > "$dir/env.sh"
echo "mesa: $(ls "$dir"/debs/mesa-vulkan-drivers_*.deb | xargs -n1 basename) unpacked in $dir; '. $dir/env.sh' selects it"
