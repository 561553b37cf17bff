/* imgauth: see imgauth.h. */
#include "imgauth.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Account names: what useradd accepts, nothing that could be a path. */
static int imgauth_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= IMGAUTH_NAME_MAX || name[0] == '-' || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Split LINE (modified in place) at ':' into at most MAX fields. */
static int imgauth_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

/* Is NAME in the comma separated member list LIST? */
static int imgauth_member(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

int imgauth_lookup(const char *name, struct imgauth_user *out)
{
    FILE *f = NULL;
    char line[1024];
    int found = -1;

    if (!imgauth_name_ok(name))
        return -1;
    memset(out, 0, sizeof(*out));
    f = fopen("/etc/passwd", "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *fl[7];
        if (imgauth_split(line, fl, 7) < 7 || strcmp(fl[0], name) != 0)
            continue;
        snprintf(out->name, sizeof(out->name), "%s", fl[0]);
        out->uid = (uid_t)strtoul(fl[2], NULL, 10);
        out->gid = (gid_t)strtoul(fl[3], NULL, 10);
        snprintf(out->home, sizeof(out->home), "%s", fl[5]);
        snprintf(out->shell, sizeof(out->shell), "%s", fl[6]);
        found = 0;
        break;
    }
    fclose(f);
    if (found != 0)
        return -1;

    f = fopen("/etc/group", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f) && out->ngroups < IMGAUTH_GROUPS_MAX) {
        char *fl[4];
        if (imgauth_split(line, fl, 4) < 4)
            continue;
        if (imgauth_member(fl[3], name))
            out->groups[out->ngroups++] = (gid_t)strtoul(fl[2], NULL, 10);
    }
    fclose(f);
    return 0;
}

/* Copy the hash field for NAME from FILE (passwd or shadow) into HASH. */
static int imgauth_hash(const char *file, const char *name, char *hash, size_t len)
{
    FILE *f = fopen(file, "re");
    char line[1024];
    int rc = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *fl[2];
        if (imgauth_split(line, fl, 2) < 2 || strcmp(fl[0], name) != 0)
            continue;
        snprintf(hash, len, "%s", fl[1]);
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

int imgauth_check(const char *name, const char *password)
{
    char hash[512] = "";
    struct crypt_data cd;
    const char *got;

    if (!imgauth_name_ok(name) || !password || !*password)
        return -1;
    if (imgauth_hash("/etc/passwd", name, hash, sizeof(hash)) != 0)
        return -1;
    if (strcmp(hash, "x") == 0 &&
        imgauth_hash("/etc/shadow", name, hash, sizeof(hash)) != 0)
        return -1;
    /* Locked, disabled or empty: no network login. */
    if (hash[0] == '\0' || hash[0] == '!' || hash[0] == '*')
        return -1;
    memset(&cd, 0, sizeof(cd));
    got = crypt_r(password, hash, &cd);
    if (!got || got[0] == '*')
        return -1;
    /* Compare all bytes, so the time does not tell where they differ. */
    size_t n = strlen(hash);
    if (strlen(got) != n)
        return -1;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(got[i] ^ hash[i]);
    return diff == 0 ? 0 : -1;
}

static const char imgauth_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int imgauth_b64decode(const char *in, char *out, size_t outlen)
{
    unsigned int acc = 0;
    int bits = 0;
    size_t n = 0;
    for (const char *p = in; *p && *p != '='; p++) {
        const char *c = strchr(imgauth_b64, *p);
        if (*p == '\r' || *p == '\n' || *p == ' ')
            continue;
        if (!c)
            return -1;
        acc = (acc << 6) | (unsigned int)(c - imgauth_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (int)n;
}

int imgauth_b64encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    size_t need = (len + 2) / 3 * 4 + 1, o = 0;
    if (outlen < need)
        return -1;
    for (size_t i = 0; i < len; i += 3) {
        unsigned int v = (unsigned int)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned int)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = imgauth_b64[(v >> 18) & 63];
        out[o++] = imgauth_b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? imgauth_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? imgauth_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}
