/* libFuzzer harness for the scenario loader and the plan built from it.
 *
 * Every input is loaded as a scenario; when it is valid, a plan for two
 * teams is built and written both as JSON and as text.  Everything is
 * freed, so that LeakSanitizer reports any leak on any path.  Built and
 * run by `make fuzz` (tests/fuzz/fuzz.mk).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "diag.h"
#include "plan.h"
#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    diag_list d;
    char err[256];
    scenario *s = NULL;
    plan *p = NULL;
    json_t *j = NULL;

    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        abort();
    diag_init(&d);
    /* Disk images resolve next to this name: under the fuzzer's cwd. */
    s = scenario_load_buffer("fuzz/input.json", (const char *)data, size, &d);
    if (s == NULL) {
        /* Sorting and printing run on every diagnostic as main() does. */
        diag_sort(&d);
        diag_print(&d, devnull);
        goto cleanup;
    }
    if (d.len != 0)
        abort(); /* a valid scenario has no diagnostics */
    p = plan_build(s, NULL, 2, err, sizeof(err));
    if (p == NULL)
        goto cleanup;
    j = plan_to_json(p);
    if (j != NULL) {
        char *text = json_dumps(j, JSON_INDENT(2));
        free(text);
    }
    plan_write_text(p, devnull);
cleanup:
    json_decref(j);
    plan_free(p);
    scenario_free(s);
    diag_clear(&d);
    return 0;
}
