# Helpers for the web application's CGI scripts (sourced, POSIX sh).
# shellcheck shell=sh

# cgi_param NAME DATA: the URL-decoded value of NAME in a query string or
# urlencoded form body.
cgi_param() {
    _v=$(printf '%s' "$2" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1 | tr '+' ' ')
    [ -n "$_v" ] && httpd -d "$_v"
    return 0
}

# cgi_body: the request body of a POST (CONTENT_LENGTH bytes of stdin).
cgi_body() {
    if [ "${REQUEST_METHOD:-GET}" = POST ] && [ "${CONTENT_LENGTH:-0}" -gt 0 ] 2>/dev/null; then
        head -c "$CONTENT_LENGTH"
    fi
}

# cgi_html TEXT: TEXT with HTML's special characters escaped.
cgi_html() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# cgi_head TITLE: the CGI header and the top of the page.
cgi_head() {
    printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
    cat <<EOT
<!DOCTYPE html>
<html><head><title>$1 - Intranet</title>
<style>body{font-family:sans-serif;margin:2em;max-width:50em}
nav a{margin-right:1em}pre{background:#eee;padding:1em;overflow:auto}</style>
</head><body>
<nav><a href="/">Home</a><a href="/cgi-bin/login.cgi">Staff login</a>
<a href="/cgi-bin/view.cgi">Documents</a><a href="/cgi-bin/ping.cgi">Network check</a></nav>
<h1>$1</h1>
EOT
}

cgi_foot() {
    echo '</body></html>'
}

# cgi_app_log MSG: the application's own log (logins, lookups).
cgi_app_log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') ${REMOTE_ADDR:--} $*" >>/var/log/webapp.log 2>/dev/null || true
}
