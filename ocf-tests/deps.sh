#!/usr/bin/env bash
# Install what Hale's tests and demo need on Debian 12, as root: the cluster stack whose tools
# judge our agents (pacemaker, pcs, ocf-tester from resource-agents), strace to count forks,
# xmllint for the meta-data schemas, python3 for test web servers, etcd-server for the lock
# store tests (each test starts its own etcd on loopback; curl writes crafted records through its
# gateway), git (with `git daemon`) and
# openssh-client's ssh-keygen and gpg (with gpg-agent) for the signed repositories of the gitscript tests, libc6-dev for
# the static glibc that the vip program is linked with. Idempotent: apt runs only
# when something is missing.
set -euo pipefail

packages=(pacemaker pacemaker-cli-utils corosync resource-agents pcs strace libxml2-utils python3 procps login iproute2 iputils-ping time etcd-server curl git openssh-client libc6-dev gpg gpg-agent)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
    # shellcheck disable=SC1091
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "cargo (Rust >= 1.89) is required: install it with rustup" >&2; exit 1; }
