# Account helpers behind the image's adduser, addgroup and chpasswd (Debian's
# busybox-static has none of these applets; the agent calls them by name).
# They edit /etc/passwd, /etc/group and /etc/shadow directly.
# shellcheck shell=sh

PW_PASSWD=${PW_ROOT:-}/etc/passwd
PW_GROUP=${PW_ROOT:-}/etc/group
PW_SHADOW=${PW_ROOT:-}/etc/shadow

pw_die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# pw_valid NAME: account and group names useradd would accept.
pw_valid() {
    case $1 in
    '' | -* | *[!A-Za-z0-9._-]*) return 1 ;;
    esac
    [ "${#1}" -le 32 ]
}

pw_has_user() { grep -q "^$1:" "$PW_PASSWD"; }
pw_has_group() { grep -q "^$1:" "$PW_GROUP"; }

# pw_free_id FILE MIN MAX: the lowest id >= MIN not used in FILE's field 3.
pw_free_id() {
    awk -F: -v min="$2" -v max="$3" '
        { used[$3] = 1 }
        END { for (i = min; i <= max; i++) if (!(i in used)) { print i; exit } }' "$1"
}

# pw_replace FILE: replace FILE with stdin, keeping its mode.
pw_replace() {
    _tmp=$1.new.$$
    cat >"$_tmp"
    chmod "$(stat -c %a "$1")" "$_tmp"
    mv "$_tmp" "$1"
}

# pw_add_member GROUP USER
pw_add_member() {
    awk -F: -v OFS=: -v g="$1" -v u="$2" '
        $1 == g {
            n = split($4, m, ","); found = 0
            for (i = 1; i <= n; i++) if (m[i] == u) found = 1
            if (!found) $4 = ($4 == "" ? u : $4 "," u)
        }
        { print }' "$PW_GROUP" | pw_replace "$PW_GROUP"
}

# pw_set_hash USER HASH
pw_set_hash() {
    _days=$(($(date +%s) / 86400))
    if grep -q "^$1:" "$PW_SHADOW"; then
        awk -F: -v OFS=: -v u="$1" -v h="$2" -v d="$_days" '
            $1 == u { $2 = h; $3 = d } { print }' "$PW_SHADOW" | pw_replace "$PW_SHADOW"
    else
        echo "$1:$2:$_days:0:99999:7:::" >>"$PW_SHADOW"
    fi
}
