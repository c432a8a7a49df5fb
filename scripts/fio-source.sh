#!/bin/sh
# The source of the installed fio, configured, for building the fio engine
# (docs/fio-engine.md): fio ships no headers, and an engine must be built
# against the very version that loads it.  Fetches Debian's source package
# of that version with apt (deb-src twins of this system's entries, in a
# private apt state under DIR: the system's apt setup is left alone),
# unpacks it and runs its configure as Debian's build does.
#   scripts/fio-source.sh DIR
# Prints the configured tree's path; a second run reuses it.
set -eu
[ $# -eq 1 ] || {
	echo "usage: scripts/fio-source.sh DIR" >&2
	exit 2
}
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
ver=$(dpkg-query -W -f='${Version}' fio 2>/dev/null) || {
	echo "fio-source: fio is not installed (apt-get install fio)" >&2
	exit 1
}
up=${ver#*:}
up=${up%-*}
tree="$DIR/fio-$up"
if [ -f "$tree/config-host.h" ] && [ "$(cat "$tree/.debian-version" 2>/dev/null)" = "$ver" ]; then
	echo "$tree"
	exit 0
fi
command -v dpkg-source >/dev/null || {
	echo "fio-source: dpkg-source is missing (apt-get install dpkg-dev)" >&2
	exit 1
}
APT="$DIR/apt"
rm -rf "$APT" "$tree"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/parts"
# deb-src entries beside this system's deb ones, in both formats.
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	sed 's/^Types:.*/Types: deb-src/' "$f" >"$APT/parts/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] || continue
	sed -n 's/^deb[[:space:]]/deb-src /p' "$f" >"$APT/parts/$(basename "$f").list"
done
set -- -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APT/parts" \
	-o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o Debug::NoLocking=1
# A source that fails to answer is reported by update; apt-get source then
# says whether the package was found elsewhere.
apt-get "$@" -q update >"$APT/update.log" 2>&1 || cat "$APT/update.log" >&2
(cd "$DIR" && apt-get "$@" -q source --download-only "fio=$ver") >"$APT/source.log" 2>&1 || {
	cat "$APT/source.log" >&2
	echo "fio-source: Debian's source of fio $ver could not be fetched" >&2
	exit 1
}
(cd "$DIR" && dpkg-source -x "fio_${ver#*:}.dsc" "$tree") >"$APT/unpack.log" 2>&1 || {
	cat "$APT/unpack.log" >&2
	exit 1
}
# As debian/rules configures it; the engine needs only config-host.h.
(cd "$tree" && ./configure --disable-native --prefix=/usr) >"$APT/configure.log" 2>&1 || {
	cat "$APT/configure.log" >&2
	exit 1
}
echo "$ver" >"$tree/.debian-version"
echo "$tree"
