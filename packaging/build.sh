#!/usr/bin/env bash
# Build Hale's packages from the workspace, as root on Debian 12:
#   target/packages/hale_<version>_amd64.deb       (dpkg-deb, with a generated control file)
#   target/packages/hale-<version>-1.x86_64.rpm    (rpmbuild from Debian's rpm package)
# from one release build of the multi-call binary, staged once and packed twice. See
# packaging/README.md for the layout and what the maintainer scripts do.
#
# The version is the workspace's ([workspace.package] in Cargo.toml). HALE_VERSION=X overrides
# it without editing Cargo.toml: the binary is then built from a copy of the tree whose
# workspace version is X, so `hale --version` and every agent's `resource-agent version=` say
# X too (one version everywhere), not only the package's metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() {
    echo "packaging/build.sh: $*" >&2
    exit 1
}
step() { echo "== $*"; }

# Tools: dpkg-deb and dpkg-shlibdeps (dpkg-dev), rpmbuild (rpm), strip (binutils). apt runs
# only when one is missing, so a prepared machine needs neither root nor the network.
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v strip >/dev/null || need+=(binutils)
if ((${#need[@]})); then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${need[@]}"
fi
# shellcheck disable=SC1091
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
command -v cargo >/dev/null || die "cargo (Rust >= 1.89) is required: install it with rustup"

# The version of [workspace.package], the one version of every crate.
workspace_version() {
    awk '/^\[/ { in_pkg = ($0 == "[workspace.package]") }
         in_pkg && /^version[ \t]*=/ { sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }' "$1"
}
ws_version=$(workspace_version Cargo.toml)
[ -n "$ws_version" ] || die "no version in [workspace.package] of Cargo.toml"
version=${HALE_VERSION:-$ws_version}
# Valid as a Debian upstream version and as an RPM Version at once (no '-': both use it to
# separate the release), and safe to put in the control file and the spec.
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version '$version': use digits, letters and . + ~ only, starting with a digit"

deb_arch=$(dpkg --print-architecture)
rpm_arch=$(uname -m)
work=$root/target/packaging/$version
out=$root/target/packages
rm -rf "$work"
mkdir -p "$work" "$out"
umask 022

step "build hale $version (release)"
if [ "$version" = "$ws_version" ]; then
    cargo build --release -p hale
    built=$root/target/release/hale
else
    # A copy of the tree (without target/ and .git) with the version replaced, built in its
    # own target directory seeded from the workspace's: only the workspace's own crates are
    # rebuilt, and the workspace keeps its binaries.
    src=$work/src
    mkdir -p "$src"
    tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -C "$src" -xf -
    awk -v v="$version" '/^\[/ { in_pkg = ($0 == "[workspace.package]") }
         in_pkg && !done && /^version[ \t]*=/ { print "version = \"" v "\""; done = 1; next }
         { print }' "$root/Cargo.toml" >"$src/Cargo.toml"
    [ "$(workspace_version "$src/Cargo.toml")" = "$version" ] || die "could not set the version in the copy"
    if [ -d "$root/target/release" ]; then
        mkdir -p "$work/target"
        cp -a "$root/target/release" "$work/target/release"
    fi
    (cd "$src" && cargo build --release -p hale --target-dir "$work/target")
    built=$work/target/release/hale
fi
reported=$("$built" --version)
[ "$reported" = "hale $version" ] || die "the binary says '$reported', expected 'hale $version'"

step "stage the files"
# Stripped as distributions ship binaries: the symbols only serve a debugger, and a panic is
# reported as an exit reason, not a backtrace.
# Each agent's own program (hale-<agent>) is staged beside the binary, where `hale install`
# looks for it; the agents' names come from `hale list` (the registry).
bin=$work/hale
agent_names=$("$built" list | sed -n 's/^ocf:hale:\([a-z0-9-]*\) .*/\1/p')
[ -n "$agent_names" ] || die "hale list printed no agent"
for prog in hale $(printf 'hale-%s ' $agent_names); do
    [ -f "$(dirname "$built")/$prog" ] || die "$prog was not built beside $built"
    cp "$(dirname "$built")/$prog" "$work/$prog"
    strip --strip-unneeded --remove-section=.comment "$work/$prog"
    chmod 0755 "$work/$prog"
done

# The tree both packages share. Agents and pages come from the binary itself (hale install,
# hale man --out-dir), that is from the registry: a new agent is packaged without a change here.
common=$work/common
"$bin" install --ocf-root "$common/usr/lib/ocf" >/dev/null
mkdir -p "$common/usr/bin"
ln -s ../lib/ocf/lib/hale/hale "$common/usr/bin/hale"
"$bin" man --out-dir "$common/usr/share/man" >/dev/null
# -n: no file name or time stamp inside, so the same pages give the same bytes.
find "$common/usr/share/man" -type f -exec gzip -9n {} +
mkdir -p "$common/usr/share/bash-completion/completions" "$common/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$common/usr/share/bash-completion/completions/hale"
"$bin" completions fish >"$common/usr/share/fish/vendor_completions.d/hale.fish"
install -D -m 0644 README.md "$common/usr/share/doc/hale/README.md"
zsh_completion=$work/_hale
"$bin" completions zsh >"$zsh_completion"
find "$common" -type f ! -path '*/usr/lib/ocf/lib/hale/hale' ! -path '*/usr/lib/ocf/resource.d/hale/*' -exec chmod 0644 {} +
find "$common" -type d -exec chmod 0755 {} +

# Every path goes into a control file, a spec or a file list: allow only plain names.
bad=$(find "$common" -mindepth 1 -printf '/%P\n' | grep -Ev '^/[A-Za-z0-9._/+-]+$' || true)
[ -z "$bad" ] || die "unexpected characters in staged paths: $bad"

# The package's description: the agents' list comes from `hale list` (the registry).
agents_list=$("$bin" list)
[ -n "$agents_list" ] || die "hale list printed no agent"
description_body="Hale's agents run under Pacemaker as ocf:hale:<agent>: they pass ocf-tester,
never fork on monitor, finish every action inside its timeout and explain
every failure in one line. Each agent is a small program of its own; the hale command
lists, describes, documents and runs them.

Agents:"

step "deb"
debroot=$work/deb
cp -a "$common" "$debroot"
# Debian's zsh looks in vendor-completions (RPM distributions: site-functions).
install -D -m 0644 "$zsh_completion" "$debroot/usr/share/zsh/vendor-completions/_hale"
install -m 0644 packaging/deb/copyright "$debroot/usr/share/doc/hale/copyright"
# A native package's changelog; the date is the last commit's, so rebuilds are identical.
when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
printf 'hale (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- Hale maintainers <maintainers@hale.invalid>  %s\n' \
    "$version" "$version" "$(date -u -R -d "@$when")" | gzip -9n >"$debroot/usr/share/doc/hale/changelog.gz"
chmod 0644 "$debroot/usr/share/doc/hale/changelog.gz"

# Depends as dpkg-shlibdeps computes them from the programs' symbol versions (libc6 (>= the
# newest GLIBC_x.y any of them uses); the unwinder and libz are linked in). It
# wants to run in a source tree (a debian/control) on binaries inside a package tree (a
# directory with DEBIAN/).
mkdir -p "$debroot/DEBIAN"
shl=$work/shlibdeps
mkdir -p "$shl/debian"
: >"$shl/debian/control"
depends=$(cd "$shl" && dpkg-shlibdeps -O "$debroot/usr/lib/ocf/lib/hale/hale" "$debroot"/usr/lib/ocf/resource.d/hale/* |
    sed -n 's/^shlibs:Depends=//p')
[[ $depends == *libc6* ]] || die "dpkg-shlibdeps found no libc6 dependency: '$depends'"
# A program linked statically with glibc (agents/hale/build.rs: those that never look up a
# name) carries glibc's code: Debian policy 7.8 asks for Built-Using naming the glibc source
# version it came from. A static program has no program interpreter (PT_INTERP).
built_using=
for prog in "$debroot"/usr/lib/ocf/resource.d/hale/*; do
    [ -L "$prog" ] && continue
    if [[ $(readelf -lW "$prog") != *'Requesting program interpreter'* ]]; then
        built_using="glibc (= $(dpkg-query -W -f='${source:Version}' libc6-dev))"
    fi
done

installed_size=$(du -sk --exclude=DEBIAN "$debroot" | cut -f1)
{
    echo "Package: hale"
    echo "Version: $version"
    echo "Architecture: $deb_arch"
    echo "Maintainer: Hale maintainers <maintainers@hale.invalid>"
    echo "Installed-Size: $installed_size"
    echo "Depends: $depends"
    [ -z "$built_using" ] || echo "Built-Using: $built_using"
    echo "Recommends: pacemaker, resource-agents"
    echo "Suggests: pcs"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: OCF resource agents for Pacemaker, written in Rust"
    # Continuation lines start with a space; an empty line is " ."; agent lines are indented
    # twice so they show verbatim.
    printf '%s\n' "$description_body" | sed -e 's/^$/./' -e 's/^/ /'
    printf '%s\n' "$agents_list" | sed -e 's/^/  /'
} >"$debroot/DEBIAN/control"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$debroot/DEBIAN/"
(cd "$debroot" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$debroot/DEBIAN/md5sums"
chmod 0644 "$debroot/DEBIAN/control" "$debroot/DEBIAN/md5sums"
deb=$out/hale_${version}_${deb_arch}.deb
# --root-owner-group: every file root:root without fakeroot.
dpkg-deb --root-owner-group -Zxz --build "$debroot" "$deb" >/dev/null

step "rpm"
rpmroot=$work/rpm-root
cp -a "$common" "$rpmroot"
install -D -m 0644 "$zsh_completion" "$rpmroot/usr/share/zsh/site-functions/_hale"
install -D -m 0644 packaging/LICENSE "$rpmroot/usr/share/licenses/hale/LICENSE"
# RPM owns the state directory in its file list (rpm -e removes it when empty), so it is
# staged here with its mode; the .deb makes it in postinst instead (see deb/postinst).
install -d -m 0751 "$rpmroot/var/lib/hale"

# The file list with explicit modes, made from the staged tree. Directories every system has
# are not owned; Hale's own and the OCF ones are (co-owned with resource-agents, which is only
# recommended, so that rpm -e leaves nothing behind).
files=$work/files.list
{
    echo "%defattr(-,root,root,-)"
    (cd "$rpmroot" && find . ! -path . -printf '%y %m /%P\n' | sort -k3) | while read -r type mode path; do
        case "$path" in
            /usr | /usr/bin | /usr/lib | /usr/share | /usr/share/man | /usr/share/man/man[0-9] | \
                /usr/share/doc | /usr/share/licenses | /var | /var/lib) continue ;;
        esac
        case "$type" in
            d) echo "%dir %attr($mode,root,root) \"$path\"" ;;
            l) echo "\"$path\"" ;;
            f) case "$path" in
                /usr/share/licenses/*) echo "%license %attr($mode,root,root) \"$path\"" ;;
                /usr/share/doc/*) echo "%doc %attr($mode,root,root) \"$path\"" ;;
                *) echo "%attr($mode,root,root) \"$path\"" ;;
            esac ;;
            *) die "unexpected file type '$type' of $path" ;;
        esac
    done
} >"$files"
# The description in the spec: '%' would start a macro, so double it.
{
    printf '%s\n' "$description_body"
    printf '%s\n' "$agents_list" | sed -e 's/^/  /'
} | sed 's/%/%%/g' >"$work/description"
awk -v version="$version" -v files="$files" -v description="$work/description" '
    $0 == "@FILES@" { while ((getline line < files) > 0) print line; next }
    $0 == "@DESCRIPTION@" { while ((getline line < description) > 0) print line; next }
    { gsub(/@VERSION@/, version); print }' packaging/rpm/hale.spec.in >"$work/hale.spec"

rpmtop=$work/rpmbuild
mkdir -p "$rpmtop"
# xz payload: readable by every rpm still in use (zstd needs rpm >= 4.14).
HALE_RPM_STAGE=$rpmroot rpmbuild -bb --quiet --target "$rpm_arch" \
    --define "_topdir $rpmtop" \
    --define "_binary_payload w6.xzdio" \
    --define "_buildhost hale-build" \
    "$work/hale.spec" >/dev/null
rpm=$out/hale-${version}-1.${rpm_arch}.rpm
cp "$rpmtop/RPMS/$rpm_arch/hale-${version}-1.${rpm_arch}.rpm" "$rpm"

step "done"
ls -l "$deb" "$rpm"
echo "Depends: $depends"
