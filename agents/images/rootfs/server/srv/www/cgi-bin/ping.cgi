#!/bin/sh
# Network check.  DELIBERATELY VULNERABLE (exercise target): the host field
# goes into a shell command line, so "198.18.1.1; id" runs id as the web
# server's user.
# shellcheck source-path=SCRIPTDIR source=../../../usr/lib/cyrange/www/cgi.sh
. /usr/lib/cyrange/www/cgi.sh
host=$(cgi_param host "${QUERY_STRING:-}")
cgi_head "Network check"
cat <<EOT
<form method="get" action="/cgi-bin/ping.cgi">
<p><label>Host <input name="host" value="$(cgi_html "$host")"></label> <button>Ping</button></p>
</form>
EOT
if [ -n "$host" ]; then
    cgi_app_log "ping host=$host"
    out=$(sh -c "ping -c 2 -W 2 $host" 2>&1)
    echo "<pre>$(cgi_html "$out")</pre>"
fi
cgi_foot
