#!/bin/sh
# Document viewer.  DELIBERATELY VULNERABLE (exercise target): the file
# name is joined to the documents folder unchecked, so
# ?file=../../../etc/passwd reads any file the web server's user can.
# shellcheck source-path=SCRIPTDIR source=../../../usr/lib/cyrange/www/cgi.sh
. /usr/lib/cyrange/www/cgi.sh
docs=/srv/www/files
file=$(cgi_param file "${QUERY_STRING:-}")
cgi_head "Documents"
if [ -z "$file" ]; then
    echo "<ul>"
    for f in "$docs"/*; do
        [ -f "$f" ] || continue
        n=${f##*/}
        echo "<li><a href=\"/cgi-bin/view.cgi?file=$n\">$(cgi_html "$n")</a></li>"
    done
    echo "</ul>"
else
    cgi_app_log "view file=$file"
    if content=$(cat "$docs/$file" 2>&1); then
        echo "<h2>$(cgi_html "$file")</h2><pre>$(cgi_html "$content")</pre>"
    else
        echo "<p>Cannot open $(cgi_html "$file"):</p><pre>$(cgi_html "$content")</pre>"
    fi
fi
cgi_foot
