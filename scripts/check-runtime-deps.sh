#!/usr/bin/env bash
# Checks that deploy/Dockerfile's runtime stage installs every Debian package
# whose libraries the tessera binary loads (there is no container engine here
# to run the image, so this is how its package list is proven):
#   - `ldd BINARY` lists the libraries, `dpkg -S` names the package of each;
#   - a library the binary names itself (ELF NEEDED) must have its package
#     named in the runtime stage's `apt-get install`;
#   - one it loads through another library must come with those packages'
#     dependencies (Depends and Pre-Depends, followed recursively).
# Libraries no package owns under /usr/local/cuda (the CUDA toolkit) are
# listed and skipped: the image's build stage has no nvcc, so it builds
# without CUDA. Any other library no package owns is an error.
#
# Usage: scripts/check-runtime-deps.sh [BINARY] [DOCKERFILE]
#        (defaults: build/tessera, deploy/Dockerfile)
# Exit 0 when the runtime stage names them all; 1 naming what is missing;
# 2 when the binary or the Dockerfile cannot be read.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$top/build/tessera}
dockerfile=${2:-$top/deploy/Dockerfile}
[ -x "$binary" ] || { echo "check-runtime-deps: no executable $binary (build it first)" >&2; exit 2; }
[ -r "$dockerfile" ] || { echo "check-runtime-deps: cannot read $dockerfile" >&2; exit 2; }

# The packages the last stage's `apt-get install` names (continued lines joined).
runtime_packages() {
  awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END{printf "%s", stage}' "$dockerfile" |
    sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' |
    grep -o 'apt-get install[^&;]*' | sed 's/^apt-get install//' | tr ' \t' '\n\n' |
    grep -E '^[a-z0-9][a-z0-9+.-]+$' | sort -u || true
}

# The package that owns library file $1, or nothing. With merged /usr, dpkg
# may know the file under /lib or /usr/lib, and by its link's name or target.
owner_of() {
  local candidates=("$1" "$(readlink -f "$1")") p
  for p in "${candidates[@]}"; do
    case $p in /usr/lib/*) candidates+=("${p#/usr}") ;; /lib/*) candidates+=("/usr$p") ;; esac
  done
  for p in "${candidates[@]}"; do
    if out=$(dpkg -S "$p" 2>/dev/null); then
      sed -n '1s/:.*//; 1s/,.*//; 1p' <<<"$out"
      return
    fi
  done
}

# Every package the given ones depend on, recursively (all alternatives).
dependency_closure() {
  local -A seen=()
  local queue=("$@") p deps d
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    deps=$(dpkg-query -W -f='${Depends},${Pre-Depends}' "$p" 2>/dev/null || true)
    for d in $(tr ',|' '\n\n' <<<"$deps" | sed -E 's/\(.*\)//; s/:any//; s/[[:space:]]//g' | grep -v '^$'); do
      [ -n "${seen[$d]:-}" ] || queue+=("$d")
    done
  done
  printf '%s\n' "${!seen[@]}"
}

named=$(runtime_packages)
[ -n "$named" ] || { echo "check-runtime-deps: $dockerfile's last stage installs no packages"; exit 1; }
closure=$(dependency_closure $named | sort -u)
direct=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

missing=() skipped=()
while read -r soname path; do
  [ -n "$path" ] || continue
  pkg=$(owner_of "$path")
  if [ -z "$pkg" ]; then
    case $path in
      /usr/local/cuda*) skipped+=("$soname") ; continue ;;
      *) missing+=("$soname ($path: no Debian package owns it)") ; continue ;;
    esac
  fi
  if grep -qx "$soname" <<<"$direct"; then
    grep -qx "$pkg" <<<"$named" || missing+=("$pkg (for $soname, which $binary links directly)")
  else
    grep -qx "$pkg" <<<"$closure" || missing+=("$pkg (for $soname, loaded through another library)")
  fi
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')

[ ${#skipped[@]} -eq 0 ] || echo "check-runtime-deps: not in the image (CUDA toolkit, the image builds without it): ${skipped[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-runtime-deps: $dockerfile's runtime stage lacks:"
  printf '  %s\n' "${missing[@]}" | sort -u
  exit 1
fi
echo "check-runtime-deps: $dockerfile's runtime stage installs every package $binary loads ($(wc -w <<<"$named") named)"
