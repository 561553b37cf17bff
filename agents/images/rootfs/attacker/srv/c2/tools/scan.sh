#!/bin/sh
# scan.sh HOST [PORTS]: TCP connect scan with nc (the attacker's stage-two
# discovery tool, fetched by tool.transfer).  Prints the open ports.
host=${1:?usage: scan.sh HOST [PORTS]}
ports=${2:-21 22 23 25 53 80 110 139 143 443 445 3128 3306 3389 8080}
for p in $ports; do
    if nc -z -w 1 "$host" "$p" 2>/dev/null; then
        echo "$host:$p open"
    fi
done
