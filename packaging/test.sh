#!/usr/bin/env bash
# Test Hale's packages as an administrator meets them, as root on Debian 12:
#   1. build the .deb and the .rpm (packaging/build.sh), and a second .deb with a bumped version;
#   2. check the .rpm's file list, modes and dependencies with rpm -qlp --dump;
#   3. make a clean Debian 12 root with debootstrap, from the mirror this machine's apt uses,
#      install the .deb there with apt (with pacemaker-cli-utils, pcs and man-db) and check
#      pcs resource describe, crm_resource --show-metadata, the man pages, hale --version;
#   4. upgrade to the bumped .deb with dpkg -i, check the version changed everywhere;
#   5. dpkg -r: every file the package installed is gone, the state directory is kept;
#      dpkg -P: the state directory goes when empty.
# Every check prints "ok" or "FAIL"; the last line is "N passed, M failed"; the exit status is
# non-zero when anything failed. The chroot lives in /var/tmp and is removed on exit.
#
# Small checks run as `bash -c '...' _ "$value"...`: values reach the snippet as positional
# parameters, never spliced into its text, hence single quotes throughout.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

[ "$(id -u)" = 0 ] || {
    echo "packaging/test.sh: run as root: debootstrap, chroot and mount need it" >&2
    exit 1
}

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    echo "ok   $*"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $*" >&2
}
summary() { echo "$passed passed, $failed failed"; }
# A check whose failure leaves nothing meaningful to test after it.
fatal() {
    fail "$*"
    echo "packaging/test.sh: stopping: the checks after this one depend on it" >&2
    summary
    exit 1
}
# check DESCRIPTION COMMAND...: runs the command, quietly; on failure shows its output.
check() {
    local what=$1 output
    shift
    if output=$("$@" 2>&1); then
        pass "$what"
    else
        fail "$what"
        printf '%s\n' "$output" | tail -n 20 | sed 's/^/     | /' >&2
    fi
}
phase() { echo "== $* (at $((SECONDS - start)) s)"; }

# The chroot and everything mounted in it go away however this script ends. Only /proc is
# mounted (never a bind mount of /dev or /sys), and the tree is deleted only once nothing is
# mounted below it, so a failed unmount can never make rm reach the host's files.
chroot_dir=""
bump_pid=""
cleanup() {
    local status=$?
    if [ -n "$bump_pid" ]; then kill -- "-$bump_pid" 2>/dev/null || true; fi
    if [ -n "$chroot_dir" ] && [ -d "$chroot_dir" ]; then
        if mountpoint -q "$chroot_dir/proc"; then umount "$chroot_dir/proc" || umount -l "$chroot_dir/proc" || true; fi
        if grep -qF " $chroot_dir/" /proc/mounts; then
            echo "packaging/test.sh: something is still mounted under $chroot_dir; not deleting it" >&2
        else
            rm -rf "$chroot_dir"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
phase "build the packages"
bash packaging/build.sh
version=$(awk '/^\[/ { p = ($0 == "[workspace.package]") } p && /^version[ \t]*=/ { sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }' Cargo.toml)
# The bumped version: the last number plus one (0.1.0 -> 0.1.1), newer for dpkg and rpm alike.
if [[ $version =~ ^(.*[^0-9])?([0-9]+)$ ]]; then
    bumped=${BASH_REMATCH[1]}$((BASH_REMATCH[2] + 1))
else
    bumped=$version.1
fi
arch=$(dpkg --print-architecture)
deb=target/packages/hale_${version}_${arch}.deb
deb2=target/packages/hale_${bumped}_${arch}.deb
rpm=target/packages/hale-${version}-1.$(uname -m).rpm
if [ ! -f "$deb" ] || [ ! -f "$rpm" ]; then fatal "build.sh made $deb and $rpm"; fi
pass "build.sh made $deb and $rpm"

# The bumped package is built while debootstrap downloads (one is CPU, the other network).
bump_log=target/packaging/bump.log
# setsid: its own process group, so cleanup can stop cargo with it.
HALE_VERSION=$bumped setsid bash packaging/build.sh >"$bump_log" 2>&1 &
bump_pid=$!

# What the packages must contain comes from the binary (the registry), not from a list here.
bin=target/packaging/$version/hale
mapfile -t agents < <("$bin" list | awk '{ sub(/^ocf:hale:/, "", $1); print $1 }')
((${#agents[@]})) || fatal "hale list names the agents"
echo "agents: ${agents[*]}"

# ---------------------------------------------------------------------------------------------
phase "the .deb's control data"
control=$(dpkg-deb -f "$deb")
depends=$(dpkg-deb -f "$deb" Depends)
# libc6 (>= X) must cover the newest glibc symbol version any shipped program uses (the hale
# command and each agent's own program, staged beside it by build.sh).
# A static program (no program interpreter) carries glibc instead: Built-Using names it.
dynamic() { [[ $(readelf -lW "$1") == *'Requesting program interpreter'* ]]; }
statics=()
newest_glibc=$(for b in "$bin" "${agents[@]/#/$(dirname "$bin")/hale-}"; do
    if dynamic "$b"; then objdump -T "$b"; fi; done |
    grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
for b in "${agents[@]/#/$(dirname "$bin")/hale-}"; do
    dynamic "$b" || statics+=("$(basename "$b")")
done
libc_min=$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' <<<"$depends")
check "Depends ($depends) has libc6 (>= $newest_glibc), the newest GLIBC_ the programs use" \
    bash -c '[ -n "$1" ] && dpkg --compare-versions "$1" ge "$2"' _ "$libc_min" "$newest_glibc"
if ((${#statics[@]})); then
    check "Built-Using: glibc (= the libc6-dev version), for the static ${statics[*]}" \
        grep -qx "Built-Using: glibc (= $(dpkg-query -W -f='${source:Version}' libc6-dev))" <<<"$control"
else
    check "no Built-Using without a static program" bash -c '! grep -q "^Built-Using:" <<<"$1"' _ "$control"
fi
check "Recommends: pacemaker, resource-agents" grep -qx 'Recommends: pacemaker, resource-agents' <<<"$control"
check "Suggests: pcs" grep -qx 'Suggests: pcs' <<<"$control"
check "Version: $version" grep -qx "Version: $version" <<<"$control"
scripts=$(dpkg-deb --ctrl-tarfile "$deb" | tar -tf -)
for s in postinst prerm postrm md5sums; do
    check "control archive has $s" grep -qx "./$s" <<<"$scripts"
done

# ---------------------------------------------------------------------------------------------
phase "the .rpm's files, modes and dependencies"
# --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
dump=$(rpm -qp --dump "$rpm" 2>/dev/null)
rpm_entry() { awk -v p="$1" '$1 == p { print $5, $6, $7, $11 }' <<<"$dump"; }
rpm_has() { # PATH MODE [LINK TARGET]
    local got
    got=$(rpm_entry "$1")
    [ "$got" = "$2 root root ${3:-X}" ] || {
        echo "$1: got '$got', expected '$2 root root ${3:-X}'"
        return 1
    }
}
check "rpm: /usr/lib/ocf/lib/hale/hale 0755" rpm_has /usr/lib/ocf/lib/hale/hale 0100755
check "rpm: /usr/bin/hale -> ../lib/ocf/lib/hale/hale" rpm_has /usr/bin/hale 0120777 ../lib/ocf/lib/hale/hale
for a in "${agents[@]}"; do
    check "rpm: /usr/lib/ocf/resource.d/hale/$a 0755 (its own program)" \
        rpm_has "/usr/lib/ocf/resource.d/hale/$a" 0100755
    check "rpm: man page ocf_hale_$a.7.gz 0644" rpm_has "/usr/share/man/man7/ocf_hale_$a.7.gz" 0100644
done
check "rpm: man page hale.8.gz 0644" rpm_has /usr/share/man/man8/hale.8.gz 0100644
check "rpm: /var/lib/hale 0751" rpm_has /var/lib/hale 040751
check "rpm: /usr/lib/ocf/resource.d/hale 0755" rpm_has /usr/lib/ocf/resource.d/hale 040755
for f in /usr/share/bash-completion/completions/hale /usr/share/zsh/site-functions/_hale \
    /usr/share/fish/vendor_completions.d/hale.fish /usr/share/doc/hale/README.md /usr/share/licenses/hale/LICENSE; do
    check "rpm: $f 0644" rpm_has "$f" 0100644
done
check "rpm: every file is root:root" bash -c '! awk "\$6 != \"root\" || \$7 != \"root\"" <<<"$1" | grep -q .' _ "$dump"
check "rpm: version $version-1" bash -c '[ "$(rpm -qp --qf "%{VERSION}-%{RELEASE}" "$1" 2>/dev/null)" = "$2" ]' _ "$rpm" "$version-1"
rpm_requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
check "rpm: requires libc.so.6(GLIBC_$newest_glibc)(64bit)" grep -qxF "libc.so.6(GLIBC_$newest_glibc)(64bit)" <<<"$rpm_requires"
check "rpm: recommends pacemaker and resource-agents" \
    bash -c '[ "$(rpm -qp --recommends "$1" 2>/dev/null | sort | tr "\n" " ")" = "pacemaker resource-agents " ]' _ "$rpm"
check "rpm: suggests pcs" bash -c '[ "$(rpm -qp --suggests "$1" 2>/dev/null)" = pcs ]' _ "$rpm"

# ---------------------------------------------------------------------------------------------
phase "a clean Debian 12 root (debootstrap)"
command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap; }
}
# The mirrors this machine's apt uses (whatever the sources' format), for the same suites.
repos() { apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u; }
[ -n "$(repos)" ] || apt-get update -q
mapfile -t sources < <(repos | awk '$2 ~ /^bookworm(-updates|-security)?$/')
mirror=${HALE_DEBIAN_MIRROR:-$(printf '%s\n' "${sources[@]}" | awk '$2 == "bookworm" { print $1; exit }')}
mirror=${mirror:-http://deb.debian.org/debian/}
[[ $mirror =~ ^(https?|file)://[^[:space:]]+$ ]] || fatal "a usable Debian mirror ('$mirror')"
echo "mirror: $mirror"

chroot_dir=$(mktemp -d /var/tmp/hale-pkgtest.XXXXXX)
# mktemp makes it 0700, and it becomes the root's "/": everyone must be able to enter it.
chmod 0755 "$chroot_dir"
if ! debootstrap --variant=minbase bookworm "$chroot_dir" "$mirror" >"$chroot_dir.debootstrap.log" 2>&1; then
    tail -n 20 "$chroot_dir.debootstrap.log" >&2
    rm -f "$chroot_dir.debootstrap.log"
    fatal "debootstrap --variant=minbase bookworm"
fi
rm -f "$chroot_dir.debootstrap.log"
pass "debootstrap --variant=minbase bookworm from $mirror"
{
    for s in "${sources[@]}"; do
        read -r uri suite <<<"$s"
        [[ $uri =~ ^[a-z]+://[^[:space:]]+$ ]] && echo "deb $uri $suite main"
    done
    [ ${#sources[@]} -gt 0 ] || echo "deb $mirror bookworm main"
} >"$chroot_dir/etc/apt/sources.list"
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
# No service starts in the chroot (pacemaker and corosync come in as recommended packages).
printf '#!/bin/sh\nexit 101\n' >"$chroot_dir/usr/sbin/policy-rc.d"
chmod 0755 "$chroot_dir/usr/sbin/policy-rc.d"
mount -t proc proc "$chroot_dir/proc"
# in_root COMMAND...: run in the clean root, with a plain environment.
in_root() {
    chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive HOME=/root TERM=dumb "$@"
}

phase "install the .deb with apt (recommends included), pacemaker-cli-utils, pcs, man-db"
mkdir -p "$chroot_dir/tmp/pkgs"
cp "$deb" "$chroot_dir/tmp/pkgs/"
in_root apt-get update -q >/dev/null || fatal "apt-get update in the clean root"
if ! in_root apt-get install -y -q "/tmp/pkgs/$(basename "$deb")" pacemaker-cli-utils pcs man-db >"$chroot_dir/tmp/apt.log" 2>&1; then
    tail -n 30 "$chroot_dir/tmp/apt.log" >&2
    fatal "apt-get install ./$(basename "$deb") pacemaker-cli-utils pcs man-db"
fi
pass "apt-get install ./$(basename "$deb") pacemaker-cli-utils pcs man-db"
check "dpkg: hale $version installed" bash -c '[ "$(chroot "$1" dpkg-query -W -f "\${Status} \${Version}" hale)" = "install ok installed $2" ]' _ "$chroot_dir" "$version"
check "the recommended pacemaker and resource-agents came with it" in_root dpkg-query -W pacemaker resource-agents
check "dpkg --verify hale (files match md5sums)" in_root dpkg --verify hale

phase "the installed agents"
check "hale --version says hale $version" bash -c '[ "$(chroot "$1" hale --version)" = "hale $2" ]' _ "$chroot_dir" "$version"
check "/usr/lib/ocf/lib/hale/hale is 755 root:root" \
    bash -c '[ "$(stat -c "%a %U:%G %F" "$1/usr/lib/ocf/lib/hale/hale")" = "755 root:root regular file" ]' _ "$chroot_dir"
check "/var/lib/hale made by postinst, 751 root:root" \
    bash -c '[ "$(stat -c "%a %U:%G" "$1/var/lib/hale")" = "751 root:root" ]' _ "$chroot_dir"
for a in "${agents[@]}"; do
    params=$(in_root hale meta-data "$a" | grep -o '<parameter name="[^"]*"' | sed 's/.*name="//; s/"$//')
    [ -n "$params" ] || fail "hale meta-data $a lists parameters"
    check "$a: the agent's meta-data action works as nobody (as ocf-tester runs it)" \
        in_root setpriv --reuid=nobody --regid=nogroup --clear-groups "/usr/lib/ocf/resource.d/hale/$a" meta-data
    md=$(in_root crm_resource --show-metadata "ocf:hale:$a" 2>&1) || true
    check "$a: crm_resource --show-metadata ocf:hale:$a gives version $version" \
        grep -q "<resource-agent name=\"$a\" version=\"$version\"" <<<"$md"
    described=$(in_root pcs resource describe "ocf:hale:$a" 2>&1) || fail "pcs resource describe ocf:hale:$a exits 0"
    missing=$(for p in $params; do grep -qE "^  $p( |:)" <<<"$described" || echo "$p"; done)
    check "$a: pcs resource describe lists every parameter ($(wc -w <<<"$params"))" test -z "$missing"
    [ -z "$missing" ] || echo "     | not listed: $missing" >&2
    page=$(in_root man -P cat "ocf_hale_$a" 2>/dev/null) || true
    missing=$(for p in $params; do grep -qE "^ +$p=" <<<"$page" || echo "$p"; done)
    check "$a: man ocf_hale_$a opens and documents every parameter" \
        bash -c '[ -n "$1" ] && [ -z "$2" ] && grep -q "^SUPPORTED ACTIONS" <<<"$1"' _ "$page" "$missing"
done
page=$(in_root man -P cat hale 2>/dev/null) || true
check "man hale opens and lists every agent" \
    bash -c 'for a in "${@:2}"; do grep -q "ocf:hale:$a" <<<"$1" || exit 1; done' _ "$page" "${agents[@]}"
check "man -w 7 ocf_hale_${agents[0]} finds the page in section 7" bash -c '[ "$(chroot "$1" man -w 7 "ocf_hale_$2")" = "/usr/share/man/man7/ocf_hale_$2.7.gz" ]' _ "$chroot_dir" "${agents[0]}"
check "bash completion loads and completes the agents" \
    in_root bash -c 'source /usr/share/bash-completion/completions/hale && complete -p hale >/dev/null &&
        COMP_WORDS=(hale describe ""); COMP_CWORD=2; COMP_LINE="hale describe "; COMP_POINT=${#COMP_LINE};
        _hale hale "" describe; [[ " ${COMPREPLY[*]} " == *" $1 "* ]]' _ "${agents[0]}"

# ---------------------------------------------------------------------------------------------
phase "upgrade to $bumped with dpkg -i"
if ! wait "$bump_pid"; then
    bump_pid=""
    tail -n 30 "$bump_log" >&2
    fatal "HALE_VERSION=$bumped packaging/build.sh"
fi
bump_pid=""
[ -f "$deb2" ] || fatal "HALE_VERSION=$bumped build.sh made $deb2"
pass "HALE_VERSION=$bumped build.sh made $deb2"
touch "$chroot_dir/var/lib/hale/kept-across-upgrade"
cp "$deb2" "$chroot_dir/tmp/pkgs/"
check "dpkg -i $(basename "$deb2")" in_root dpkg -i "/tmp/pkgs/$(basename "$deb2")"
check "dpkg: hale $bumped installed" bash -c '[ "$(chroot "$1" dpkg-query -W -f "\${Status} \${Version}" hale)" = "install ok installed $2" ]' _ "$chroot_dir" "$bumped"
check "hale --version says hale $bumped" bash -c '[ "$(chroot "$1" hale --version)" = "hale $2" ]' _ "$chroot_dir" "$bumped"
check "crm_resource --show-metadata gives version $bumped" \
    bash -c 'chroot "$1" crm_resource --show-metadata "ocf:hale:$3" | grep -q "<resource-agent name=\"$3\" version=\"$2\""' _ "$chroot_dir" "$bumped" "${agents[0]}"
check "the state in /var/lib/hale survived the upgrade" test -e "$chroot_dir/var/lib/hale/kept-across-upgrade"

# ---------------------------------------------------------------------------------------------
phase "remove and purge"
mapfile -t listed < <(in_root dpkg -L hale)
((${#listed[@]} > 10)) || fatal "dpkg -L hale lists the package's files (${#listed[@]})"
check "dpkg -r hale" in_root dpkg -r hale
# Files and links must be gone. A directory may stay only if another package owns it too or
# it is not empty (dpkg never removes those).
left=()
for p in "${listed[@]}"; do
    [ "$p" = "/." ] && continue
    if [ -L "$chroot_dir$p" ] || [ -f "$chroot_dir$p" ]; then
        left+=("$p")
    elif [ -d "$chroot_dir$p" ] && ! in_root dpkg-query -S "$p" >/dev/null 2>&1 &&
        [ -z "$(ls -A "$chroot_dir$p")" ]; then
        left+=("$p/")
    fi
done
check "every file dpkg -L listed (${#listed[@]} paths) is gone" test ${#left[@]} -eq 0
((${#left[@]} == 0)) || printf '     | left: %s\n' "${left[@]}" >&2
check "no ocf:hale agent is left" bash -c '! ls -A "$1/usr/lib/ocf/resource.d/hale" 2>/dev/null | grep -q .' _ "$chroot_dir"
check "dpkg -r keeps the state directory /var/lib/hale" test -d "$chroot_dir/var/lib/hale"
purge_out=$(in_root dpkg -P hale 2>&1) || fail "dpkg -P hale (with state left)"
check "dpkg -P leaves a non-empty /var/lib/hale and says so" \
    bash -c '[ -e "$1/var/lib/hale/kept-across-upgrade" ] && grep -q "not empty" <<<"$2"' _ "$chroot_dir" "$purge_out"
# Once emptied, purging a fresh install removes it.
rm -f "$chroot_dir/var/lib/hale/kept-across-upgrade"
check "dpkg -i again" in_root dpkg -i "/tmp/pkgs/$(basename "$deb2")"
check "dpkg -P hale" in_root dpkg -P hale
check "dpkg -P removes an empty /var/lib/hale" test ! -e "$chroot_dir/var/lib/hale"
check "dpkg forgot hale" bash -c '! chroot "$1" dpkg-query -W hale >/dev/null 2>&1' _ "$chroot_dir"

echo "== done in $((SECONDS - start)) s"
summary
((failed == 0))
