#!/usr/bin/env bash
# Download Debian's caffe source package (dsc, orig and debian tarballs) into
# DEST, through a private apt configuration whose deb-src line reuses the
# Debian mirror this machine is already configured with. Nothing outside
# a temporary folder is touched; the files land in DEST only when complete.
#
#   fetch_caffe_source.sh DEST VERSION [SUITE]
#
# DCD_DEBIAN_MIRROR=<uri> overrides the mirror read from /etc/apt.
set -euo pipefail
dest=$1
version=$2
suite=${3:-bullseye}

die() { echo "fetch_caffe_source: $*" >&2; exit 1; }

command -v apt-get >/dev/null || die "apt-get not found. Without apt, download caffe_${version}.dsc and its two tarballs by hand into ${dest}, or configure with -DCAFFE_SOURCE_DIR=<your Caffe checkout>."

mirror=${DCD_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # deb822 sources first (bookworm and later), then the one-line format.
  # The main archive is the URI that is not a security or updates archive.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    mirror=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' "$f")
    [[ -n $mirror ]] && break
  done
fi
if [[ -z $mirror ]]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {if ($i !~ /security/) print $i; break}}' "$f" | head -n 1)
    [[ -n $mirror ]] && break
  done
fi
[[ -n $mirror ]] || die "no Debian mirror found in /etc/apt; set DCD_DEBIAN_MIRROR=<archive URI> and retry."

work=$(mktemp -d "${TMPDIR:-/tmp}/dcd-caffe-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/out"
echo "deb-src $mirror $suite main" > "$work/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/sources.list"
      -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$work/lists"
      -o "Dir::Cache=$work/cache"
      -o "APT::Sandbox::User=$(id -un)"
      -q)

echo "fetch_caffe_source: reading the $suite source index from the configured Debian mirror"
# apt-get update exits 0 when a fetch fails, so look for the index itself.
apt-get "${opts[@]}" update >"$work/update.log" 2>&1 || true
if ! compgen -G "$work/lists/*_Sources*" >/dev/null; then
  cat "$work/update.log" >&2
  die "apt-get update of the $suite source index failed (network or mirror problem: $mirror); retry, or bring your own Caffe with -DCAFFE_SOURCE_DIR=<path>."
fi
(cd "$work/out" && apt-get "${opts[@]}" source --download-only "caffe=$version") >"$work/source.log" 2>&1 \
  || { cat "$work/source.log" >&2; die "apt-get source caffe=$version failed; retry, or bring your own Caffe with -DCAFFE_SOURCE_DIR=<path>."; }

mkdir -p "$dest"
for f in "$work"/out/caffe_*; do
  [[ -f $f ]] || continue
  mv -f "$f" "$dest/$(basename "$f").part"
  mv -f "$dest/$(basename "$f").part" "$dest/$(basename "$f")"
done
echo "fetch_caffe_source: downloaded into $dest"
