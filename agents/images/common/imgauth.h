/* imgauth: account checks for the role images' small network daemons
 * (mini-smtpd, mini-ftpd).  Reads /etc/passwd, /etc/shadow and /etc/group
 * directly (no NSS: the daemons are static), checks passwords with crypt(3)
 * from libxcrypt, so any hash the agent writes (yescrypt, sha512, md5) works
 * and a brute force against these services tries the real accounts. */
#ifndef IMGAUTH_H
#define IMGAUTH_H

#include <sys/types.h>

#define IMGAUTH_NAME_MAX 64
#define IMGAUTH_PATH_MAX 256
#define IMGAUTH_GROUPS_MAX 32

struct imgauth_user {
    char name[IMGAUTH_NAME_MAX];
    uid_t uid;
    gid_t gid;
    char home[IMGAUTH_PATH_MAX];
    char shell[IMGAUTH_PATH_MAX];
    gid_t groups[IMGAUTH_GROUPS_MAX]; /* supplementary groups, from /etc/group */
    int ngroups;
};

/* Look NAME up in /etc/passwd (and its groups in /etc/group).  Returns 0 and
 * fills *out, or -1 when there is no such user or NAME is not a plain
 * account name. */
int imgauth_lookup(const char *name, struct imgauth_user *out);

/* Check PASSWORD for NAME against /etc/shadow (or the passwd field when it
 * holds a hash).  Locked ('!', '*') and empty passwords never match.  Returns
 * 0 on a match, -1 otherwise. */
int imgauth_check(const char *name, const char *password);

/* Decode base64 IN into OUT (at most OUTLEN-1 bytes, NUL terminated).
 * Returns the decoded length or -1 on bad input or overflow. */
int imgauth_b64decode(const char *in, char *out, size_t outlen);

/* Encode LEN bytes of IN as base64 into OUT (NUL terminated).  Returns 0, or
 * -1 when OUT is too small. */
int imgauth_b64encode(const unsigned char *in, size_t len, char *out, size_t outlen);

#endif
