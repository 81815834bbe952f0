#!/usr/bin/env bash
# Installs the Debian packages goipa's tests drive: real Ironic and
# ironic-inspector, QEMU, dnsmasq and disk tools. Idempotent and quick when
# everything is there; run by `make deps` (and so by `make test`).
set -euo pipefail

packages=(
  ironic-api ironic-conductor ironic-inspector python3-ironicclient genisoimage
  isolinux syslinux-common  # Ironic builds BIOS boot ISOs with them (redfish-virtual-media)
  qemu-system-x86 qemu-utils dnsmasq-base iproute2
  gdisk fdisk dosfstools mtools e2fsprogs util-linux mount ovmf docker-registry lvm2
  mdadm  # reads the md superblocks goipa writes (the host kernel has no md; nothing is assembled)
  qemu-system-arm qemu-efi-aarch64
  openssl
  python3-zeroconf  # Ironic's and the inspector's mDNS publishing ([conductor] enable_mdns), for the mDNS test
  gcc make binutils xz-utils  # netdevsim.ko for the NIC firmware test (test/netdevsim)
  python3-sushy  # the Redfish client Ironic uses, which drives the test BMC (test/redfishbmc)
  "$@"
)

# The NIC firmware test builds netdevsim (Debian's kernels leave it out)
# from linux-source against the headers of the kernel the tests boot:
# the cloud flavour that linux-image-cloud-amd64 points at now, as
# initramfs.DebianKernelPackage resolves it.
kimg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}' || true)
if [ -n "$kimg" ]; then
  release=${kimg#linux-image-}                    # 6.1.0-57-cloud-amd64
  packages+=("linux-headers-$release" "linux-source-$(echo "$release" | cut -d. -f1,2)")
else
  packages+=(linux-headers-cloud-amd64 linux-source-6.1)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packaged services must not start (there is no systemd here, and the
  # tests run their own Ironic on their own ports).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# If a packaged Ironic or inspector did start (a host with systemd), stop
# it by its unit, never by process name.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for unit in ironic-api ironic-conductor ironic-inspector; do
    if systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl stop "$unit" && systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
  done
fi
echo "install-deps: all test packages present"
