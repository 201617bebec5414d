#!/usr/bin/env bash
# Build a folder of extra real photographs from Debian packages, for DATA=<dest>.
#
#   scripts/data_extra.sh <dest>
#
# Needs apt (Debian/Ubuntu) with package lists present; no root: the packages are fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` into a temporary directory, and only
# hand-picked photographs are copied (no drawings, renders, logos, SVGs, masks or near-duplicate
# stereo/viewpoint pairs). Licences: scripts/DATA_EXTRA_LICENSES.md; the packages' copyright
# files are copied to <dest>/licenses/, and <dest>/SOURCES.txt records package versions and
# <dest>/SHA256SUMS every image.
set -euo pipefail

die() { echo "data_extra.sh: error: $*" >&2; exit 2; }

[[ $# -eq 1 ]] || die "usage: scripts/data_extra.sh <dest-folder>"
dest=$1

for tool in apt-get apt-cache dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: this script builds the photo folder \
from Debian packages and needs a Debian/Ubuntu system with apt (use DATA=builtin or any folder of images instead)"
done

# mate-backgrounds: the nature/ photographs (GPL-2+)
MATE_DIR=usr/share/backgrounds/mate/nature
MATE=(Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower)
# plasma-workspace-wallpapers: the photographic wallpapers (LGPL-3 per their metadata.json)
PLASMA_DIR=usr/share/wallpapers
PLASMA=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am)
# opencv-doc: colour photographs among the sample images (one of each stereo / viewpoint pair)
OPENCV_DIR=usr/share/doc/opencv-doc/examples
OPENCV=(
    alphamat/input_images/plant.jpg data/aero1.jpg data/aero3.jpg data/aloeL.jpg data/apple.jpg
    data/baboon.jpg data/board.jpg data/building.jpg data/butterfly.jpg data/chicky_512.png
    data/ela_original.jpg data/fruits.jpg data/graf1.png data/home.jpg data/leuvenA.jpg data/messi5.jpg
    data/orange.jpg data/rubberwhale1.png data/squirrel_cls.jpg data/stuff.jpg
    dnn_superres/butterfly.png hfs/data/000.jpg hfs/data/001.jpg hfs/data/002.jpg reg/home.png
    text/scenetext01.jpg text/scenetext02.jpg text/scenetext03.jpg text/scenetext04.jpg
    text/scenetext05.jpg text/scenetext06.jpg
)
PACKAGES=(mate-backgrounds plasma-workspace-wallpapers opencv-doc)

available=()
for pkg in "${PACKAGES[@]}"; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then
        available+=("$pkg")
    else
        echo "data_extra.sh: warning: package $pkg is not in this machine's apt sources; skipped" >&2
    fi
done
[[ ${#available[@]} -gt 0 ]] || die "none of ${PACKAGES[*]} is known to apt (run 'apt-get update' first?)"

work=$(mktemp -d "${TMPDIR:-/tmp}/gankd-data-extra.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "downloading ${available[*]} ..."
(cd "$work" && apt-get download -q "${available[@]}" >"$work/download.log" 2>&1) \
    || { cat "$work/download.log" >&2; die "apt-get download failed (network or package lists?)"; }

mkdir -p "$dest/licenses"
: >"$work/SOURCES.txt"
copied=0
missing=0

copy() {  # copy <src> <dest-file>
    if [[ -f $1 ]]; then
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2"
        copied=$((copied + 1))
    else
        echo "data_extra.sh: warning: expected file missing from the package: $1" >&2
        missing=$((missing + 1))
    fi
}

for pkg in "${available[@]}"; do
    deb=$(ls "$work"/"${pkg}"_*.deb)
    root="$work/x/$pkg"
    mkdir -p "$root"
    dpkg-deb -x "$deb" "$root"
    echo "$pkg $(dpkg-deb -f "$deb" Version) $(basename "$deb") sha256=$(sha256sum "$deb" | cut -d' ' -f1)" \
        >>"$work/SOURCES.txt"
    cp "$root/usr/share/doc/$pkg/copyright" "$dest/licenses/$pkg.copyright"
    case $pkg in
        mate-backgrounds)
            for name in "${MATE[@]}"; do copy "$root/$MATE_DIR/$name.jpg" "$dest/$pkg/$name.jpg"; done ;;
        plasma-workspace-wallpapers)
            for name in "${PLASMA[@]}"; do
                dir="$root/$PLASMA_DIR/$name/contents/images"
                # the largest rendition of the wallpaper (file names are WIDTHxHEIGHT.ext)
                best=$(ls "$dir" 2>/dev/null | awk -F'[x.]' '{print $1 * $2, $0}' | sort -n | tail -1 | cut -d' ' -f2)
                copy "$dir/$best" "$dest/$pkg/$name.${best##*.}"
            done ;;
        opencv-doc)
            for rel in "${OPENCV[@]}"; do copy "$root/$OPENCV_DIR/$rel" "$dest/$pkg/${rel//\//_}"; done ;;
    esac
done

cp "$work/SOURCES.txt" "$dest/SOURCES.txt"
(cd "$dest" && find . -type f \( -name '*.jpg' -o -name '*.png' \) -not -path './licenses/*' | sort \
    | xargs sha256sum >SHA256SUMS)
size=$(du -sh --exclude=licenses "$dest" 2>/dev/null | cut -f1 || du -sh "$dest" | cut -f1)
note=""
[[ $missing -eq 0 ]] || note=", $missing expected file(s) missing"
echo "data_extra.sh: $copied photographs in $dest ($size)$note"
[[ $copied -gt 0 ]] || die "no photographs were copied"
