#!/bin/sh
# Staff login.  DELIBERATELY VULNERABLE (exercise target): the SQL query is
# built by pasting the form fields into it, so "' OR '1'='1" logs in and
# UNION SELECT reads other tables; sqlite3's errors are shown to the client.
# shellcheck source-path=SCRIPTDIR source=../../../usr/lib/cyrange/www/cgi.sh
. /usr/lib/cyrange/www/cgi.sh
db=/var/lib/webapp/app.db
cgi_head "Staff login"
if [ "${REQUEST_METHOD:-GET}" = POST ]; then
    body=$(cgi_body)
    user=$(cgi_param user "$body")
    pass=$(cgi_param pass "$body")
    q="SELECT username, fullname, role FROM users WHERE username='$user' AND password='$pass';"
    res=$(sqlite3 -separator ' | ' "$db" "$q" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        cgi_app_log "login error user=$user"
        echo "<p>Database error:</p><pre>$(cgi_html "$res")</pre>"
    elif [ -n "$res" ]; then
        cgi_app_log "login ok user=$user"
        first=$(echo "$res" | head -n 1 | cut -d'|' -f2 | sed 's/^ *//;s/ *$//')
        echo "<p>Welcome, $(cgi_html "$first").</p><h2>Account</h2><pre>$(cgi_html "$res")</pre>"
        owner=$(echo "$res" | head -n 1 | cut -d'|' -f1 | sed 's/ *$//')
        notes=$(sqlite3 -separator ': ' "$db" "SELECT title, body FROM notes WHERE owner='$owner';" 2>&1)
        [ -n "$notes" ] && echo "<h2>Your notes</h2><pre>$(cgi_html "$notes")</pre>"
    else
        cgi_app_log "login failed user=$user"
        echo "<p>Invalid user name or password.</p>"
    fi
fi
cat <<EOT
<form method="post" action="/cgi-bin/login.cgi">
<p><label>User name <input name="user"></label></p>
<p><label>Password <input name="pass" type="password"></label></p>
<p><button>Log in</button></p>
</form>
EOT
cgi_foot
