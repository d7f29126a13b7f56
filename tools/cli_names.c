/*
 * cli_names.c - object-graph names on the command line: `trestle inspect
 * --names graph` (each key of a TF2 checkpoint beside its graph name, and
 * optimizer slots as VAR/SLOT), and the rename rules that let op names be
 * graph names (`--names graph` on restore).
 *
 * The map comes from trestle_names_open(); this file only prints it and
 * turns it into "graph=key" rules for the planner.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trestle_graph.h"

static int open_names(const trestle_checkpoint *c, trestle_names **out)
{
    trestle_error err;
    trestle_error_clear(&err);
    if (trestle_names_open(c, out, &err) != TRESTLE_OK)
        return cli_fail(&err);
    return CLI_EXIT_OK;
}

int cli_names_list(const trestle_checkpoint *c, int json)
{
    static const char *const headers[] = { "KEY", "GRAPH NAME", "NOTE" };
    trestle_names *m = NULL;
    trestle_checkpoint_info ci;
    if (open_names(c, &m) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    trestle_checkpoint_get_info(c, &ci);
    size_t n = trestle_tensor_count(c);
    cli_table *tab = json ? NULL : cli_table_new(3, headers, NULL);
    if (!json && !tab) {
        trestle_names_free(m);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    if (json) {
        fputs("{\n  \"prefix\": ", stdout);
        cli_json_cstr(stdout, ci.prefix);
        fputs(",\n  \"names\": [\n", stdout);
    } else {
        char *prefix = cli_escape_text(ci.prefix);
        printf("checkpoint %s: %zu tensor%s, %zu in the object graph\n",
               prefix ? prefix : ci.prefix, n, n == 1 ? "" : "s", trestle_names_count(m));
        free(prefix);
    }
    int status = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        trestle_tensor_info t;
        trestle_name_info ni = { "", "", "", "", "" };
        size_t at;
        char note[512] = "";
        trestle_tensor_get_info(c, i, &t);
        int known = trestle_names_find(m, t.name, &at) == TRESTLE_OK &&
                    trestle_names_get(m, at, &ni) == TRESTLE_OK;
        if (t.kind == TRESTLE_TENSOR_OBJECT_GRAPH)
            snprintf(note, sizeof note, "(the object graph)");
        else if (!known)
            snprintf(note, sizeof note, "(not in the object graph)");
        else if (ni.slot_name[0])
            snprintf(note, sizeof note, "slot '%s' of %s", ni.slot_name, ni.slot_of);
        if (json) {
            fputs(i ? ",\n    {\"key\": " : "    {\"key\": ", stdout);
            cli_json_cstr(stdout, t.name);
            fputs(", \"graph_name\": ", stdout);
            if (known && ni.graph_name[0])
                cli_json_cstr(stdout, ni.graph_name);
            else
                fputs("null", stdout);
            fputs(", \"full_name\": ", stdout);
            cli_json_cstr(stdout, ni.full_name);
            if (ni.slot_name[0]) {
                fputs(", \"slot\": ", stdout);
                cli_json_cstr(stdout, ni.slot_name);
                fputs(", \"slot_of\": ", stdout);
                cli_json_cstr(stdout, ni.slot_of);
            }
            fputc('}', stdout);
            continue;
        }
        const char *row[] = { t.name, known && ni.graph_name[0] ? ni.graph_name : "-", note };
        if (cli_table_add_escaped(tab, row) != 0) {  /* keys and names as inspect shows them */
            cli_error("out of memory");
            status = CLI_EXIT_FAIL;
            break;
        }
    }
    if (json) {
        fputs("\n  ]\n}\n", stdout);
    } else if (status == CLI_EXIT_OK) {
        cli_table_print(tab, stdout);
    }
    cli_table_free(tab);
    trestle_names_free(m);
    return status;
}

/* The rules "graph_name=key" of trestle_names_renames(), copied. */
int cli_names_renames(const trestle_checkpoint *c, cli_names_rules *out)
{
    trestle_names *m = NULL;
    memset(out, 0, sizeof *out);
    if (open_names(c, &m) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    const char *const *rules;
    size_t n = trestle_names_renames(m, &rules);
    out->rules = calloc(n ? n : 1, sizeof *out->rules);
    for (size_t i = 0; out->rules && i < n; i++) {
        if (!(out->rules[out->n] = strdup(rules[i])))
            break;
        out->n++;
    }
    trestle_names_free(m);
    if (!out->rules || out->n < n) {
        cli_names_rules_free(out);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

const char **cli_names_merge(trestle_plan_options *po, const cli_names_rules *names)
{
    const char **all = calloc(po->num_renames + names->n + 1, sizeof *all);
    if (!all) {
        cli_error("out of memory");
        return NULL;
    }
    if (po->num_renames)
        memcpy(all, po->renames, po->num_renames * sizeof *all);
    for (size_t i = 0; i < names->n; i++)
        all[po->num_renames + i] = names->rules[i];
    po->renames = all;
    po->num_renames += names->n;
    return all;
}

void cli_names_rules_free(cli_names_rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->rules[i]);
    free(r->rules);
    memset(r, 0, sizeof *r);
}

/* ---- graph names several keys share ---- */

typedef struct named_key {
    const char *graph_name, *key; /* owned by the map */
} named_key;

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named_key *)a)->graph_name, ((const named_key *)b)->graph_name);
}

void cli_names_note_shared(const trestle_checkpoint *c, const trestle_op *ops, size_t n)
{
    trestle_names *m = NULL;
    if (trestle_names_open(c, &m, NULL) != TRESTLE_OK)
        return;
    size_t rows = trestle_names_count(m), k = 0;
    named_key *all = calloc(rows ? rows : 1, sizeof *all);
    for (size_t i = 0; all && i < rows; i++) {
        trestle_name_info ni;
        if (trestle_names_get(m, i, &ni) == TRESTLE_OK && ni.graph_name[0])
            all[k++] = (named_key){ ni.graph_name, ni.key };
    }
    if (all)
        qsort(all, k, sizeof *all, cmp_named);
    for (size_t i = 0; all && i < n; i++) {
        size_t at;
        named_key want = { ops[i].name, NULL };
        const named_key *hit = bsearch(&want, all, k, sizeof *all, cmp_named);
        /* An op named by a key of its own is no missing graph name; one
         * named twice is noted once. */
        if (!hit || trestle_tensor_find(c, ops[i].name, &at, NULL) == TRESTLE_OK)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(ops[j].name, ops[i].name) == 0;
        const named_key *lo = hit, *hi = hit;
        while (lo > all && strcmp(lo[-1].graph_name, hit->graph_name) == 0)
            lo--;
        while (hi + 1 < all + k && strcmp(hi[1].graph_name, hit->graph_name) == 0)
            hi++;
        if (seen || lo == hi)
            continue;
        char keys[2048] = "";
        size_t len = 0, count = (size_t)(hi - lo) + 1;
        for (const named_key *e = lo; e <= hi && len < sizeof keys; e++)
            len += (size_t)snprintf(keys + len, sizeof keys - len, "%s%s",
                                    e == lo ? "" : e == hi ? " and " : ", ", e->key);
        cli_error("graph name '%s' is shared by %zu keys: %s; name one by its key, or "
                  "--rename '%s=KEY'", ops[i].name, count, keys, ops[i].name);
    }
    free(all);
    trestle_names_free(m);
}
