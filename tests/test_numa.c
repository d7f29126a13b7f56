/*
 * test_numa.c - finding the GPU's NUMA node, and placing memory and
 * threads on it (engine/memory/numa.c, engine/memory/numa_cuda.c).
 *
 * The sysfs lookups run against fake trees in a scratch directory, so every
 * case (two sockets, no NUMA, missing or mangled files) runs on any host.
 * mbind and CPU affinity run for real: where a container refuses them,
 * the tests assert the exact refusal and that nothing changed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa.h"
#include "testutil.h"

/* ---- fake sysfs trees ---- */

/* Write `text` at root/rel, making the directories above it. */
static void put(const char *root, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        *s = '/';
    }
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0, "writing %s", path);
}

/* A two-socket host: GPU 0000:1b:00.0 on node 0, 0000:3b:00.0 on node 1. */
static char *two_socket_tree(void)
{
    char *root = tu_mkdtemp();
    put(root, "sys/bus/pci/devices/0000:1b:00.0/numa_node", "0\n");
    put(root, "sys/bus/pci/devices/0000:3b:00.0/numa_node", "1\n");
    put(root, "sys/devices/system/node/node0/cpulist", "0-3,8\n");
    put(root, "sys/devices/system/node/node1/cpulist", "4-7,9\n");
    return root;
}

/* ---- a PCI device's node ---- */

Test(numa, reads_the_node_of_a_pci_device)
{
    char *root = two_socket_tree();
    cr_assert_eq(trestle__numa_pci_node("0000:1b:00.0", root), 0);
    cr_assert_eq(trestle__numa_pci_node("0000:3b:00.0", root), 1);
    tu_rmtree(root);
    free(root);
}

/* cudaDeviceGetPCIBusId writes uppercase hex, nvidia-smi an 8-digit domain;
 * sysfs names are the kernel's "%04x:%02x:%02x.%d". */
static const struct {
    const char *id;
    int node;
} spellings[] = {
    { "0000:3B:00.0", 1 },     { "0000:1B:00.0", 0 },
    { "00000000:3B:00.0", 1 }, { "00010000:01:1F.7", 1 }, /* a VMD domain: 5 digits in sysfs */
    { "0:3b:0.0", 1 },         /* short fields padded as sysfs pads them */
};

Test(numa, finds_the_sysfs_name_of_any_spelling_of_a_bus_id)
{
    char *root = two_socket_tree();
    put(root, "sys/bus/pci/devices/10000:01:1f.7/numa_node", "1\n");
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++)
        cr_expect_eq(trestle__numa_pci_node(spellings[i].id, root), spellings[i].node, "bus id %s",
                     spellings[i].id);
    tu_rmtree(root);
    free(root);
}

Test(numa, is_unknown_when_the_kernel_says_minus_one)
{
    char *root = tu_mkdtemp();
    put(root, "sys/bus/pci/devices/0000:1b:00.0/numa_node", "-1\n");
    cr_assert_eq(trestle__numa_pci_node("0000:1b:00.0", root), -1);
    tu_rmtree(root);
    free(root);
}

Test(numa, is_unknown_when_the_device_or_its_file_is_missing)
{
    char *root = two_socket_tree();
    put(root, "sys/bus/pci/devices/0000:5e:00.0/vendor", "0x10de\n");
    cr_assert_eq(trestle__numa_pci_node("0000:5e:00.0", root), -1, "no numa_node file");
    cr_assert_eq(trestle__numa_pci_node("0000:af:00.0", root), -1, "no such device");
    cr_assert_eq(trestle__numa_pci_node("0000:1b:00.0", "/nonexistent-sysroot"), -1);
    tu_rmtree(root);
    free(root);
}

static const char *const bad_node_files[] = {
    "", "\n", "abc\n", "1x\n", "0x1\n", " 1\n", "-2\n", "--1\n", "1 2\n",
    "1024\n",        /* past any kernel's MAX_NUMNODES */
    "99999999999\n", /* would overflow a careless parser */
};

Test(numa, is_unknown_when_numa_node_holds_garbage)
{
    char *root = tu_mkdtemp();
    for (size_t i = 0; i < sizeof bad_node_files / sizeof bad_node_files[0]; i++) {
        put(root, "sys/bus/pci/devices/0000:1b:00.0/numa_node", bad_node_files[i]);
        cr_expect_eq(trestle__numa_pci_node("0000:1b:00.0", root), -1, "numa_node \"%s\"",
                     bad_node_files[i]);
    }
    tu_rmtree(root);
    free(root);
}

Test(numa, reads_the_largest_node_number_the_kernel_can_have)
{
    char *root = tu_mkdtemp();
    put(root, "sys/bus/pci/devices/0000:1b:00.0/numa_node", "1023");
    cr_assert_eq(trestle__numa_pci_node("0000:1b:00.0", root), 1023, "no newline is fine too");
    tu_rmtree(root);
    free(root);
}

/* Each would name the file of the real device if it were used as a path
 * or cut short, so -1 shows the id was refused, not merely not found. */
static const char *const bad_bus_ids[] = {
    "", "0000:1b:00.0/", "0000:1b:00.0\n", "0000:1b:00.0/../0000:1b:00.0", "0000:1b:00",
    "0000:1b:00.", "0000:1b:00.8", "0000:1b:20.0", "0000:1b:000.0", "0000:01b:00.0",
    "000000000:1b:00.0", "0000:1g:00.0", ":1b:00.0", "0000-1b-00.0", " 0000:1b:00.0",
    "../../../../sys/bus/pci/devices/0000:1b:00.0",
};

Test(numa, refuses_malformed_bus_ids)
{
    char *root = two_socket_tree();
    for (size_t i = 0; i < sizeof bad_bus_ids / sizeof bad_bus_ids[0]; i++)
        cr_expect_eq(trestle__numa_pci_node(bad_bus_ids[i], root), -1, "bus id \"%s\"",
                     bad_bus_ids[i]);
    tu_rmtree(root);
    free(root);
}

Test(numa, is_unknown_for_a_null_bus_id)
{
    cr_assert_eq(trestle__numa_pci_node(NULL, ""), -1);
}

Test(numa, reads_the_hosts_own_sysfs_with_an_empty_sysroot)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d)
        cr_skip_test("this host has no /sys/bus/pci/devices");
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        int want;
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/numa_node", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        cr_assert_eq(fscanf(f, "%d", &want), 1, "%s", path);
        fclose(f);
        cr_expect_eq(trestle__numa_pci_node(e->d_name, ""), want < 0 ? -1 : want, "%s", path);
        seen++;
    }
    closedir(d);
    if (seen == 0)
        cr_skip_test("no PCI device in this host's sysfs has a numa_node file");
}

/* ---- a node's CPUs ---- */

static int count_and_expect(const cpu_set_t *s, const int *want, int n)
{
    for (int i = 0; i < n; i++)
        cr_expect(CPU_ISSET(want[i], s), "cpu %d missing", want[i]);
    return CPU_COUNT(s);
}

Test(numa, parses_a_cpulist_of_ranges_and_singles)
{
    char *root = tu_mkdtemp();
    put(root, "sys/devices/system/node/node1/cpulist", "0-3,8,10-11,63\n");
    cpu_set_t s;
    cr_assert_eq(trestle__numa_node_cpus(1, root, &s), 0);
    int want[] = { 0, 1, 2, 3, 8, 10, 11, 63 };
    cr_assert_eq(count_and_expect(&s, want, 8), 8);
    tu_rmtree(root);
    free(root);
}

Test(numa, parses_a_single_cpu_and_a_range_of_one)
{
    char *root = tu_mkdtemp();
    put(root, "sys/devices/system/node/node0/cpulist", "5");
    put(root, "sys/devices/system/node/node2/cpulist", "7-7\n");
    cpu_set_t s;
    cr_assert_eq(trestle__numa_node_cpus(0, root, &s), 0);
    cr_assert_eq(count_and_expect(&s, (int[]){ 5 }, 1), 1);
    cr_assert_eq(trestle__numa_node_cpus(2, root, &s), 0);
    cr_assert_eq(count_and_expect(&s, (int[]){ 7 }, 1), 1);
    tu_rmtree(root);
    free(root);
}

Test(numa, gives_an_empty_set_for_a_node_with_memory_only)
{
    char *root = tu_mkdtemp();
    put(root, "sys/devices/system/node/node2/cpulist", "\n"); /* e.g. GH200 HBM, CXL */
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(1, &s);
    cr_assert_eq(trestle__numa_node_cpus(2, root, &s), 0);
    cr_assert_eq(CPU_COUNT(&s), 0);
    tu_rmtree(root);
    free(root);
}

Test(numa, leaves_out_cpus_a_cpu_set_cannot_name)
{
    char *root = tu_mkdtemp();
    put(root, "sys/devices/system/node/node0/cpulist", "1020-1030,4000\n");
    cpu_set_t s;
    cr_assert_eq(trestle__numa_node_cpus(0, root, &s), 0);
    cr_assert_eq(count_and_expect(&s, (int[]){ 1020, 1021, 1022, 1023 }, 4), 4);
    tu_rmtree(root);
    free(root);
}

static const char *const bad_cpulists[] = {
    "0-\n", "-1\n", "3-1\n", "0,,1\n", ",0\n", "0,\n", "0-31:2\n", "0-7:2/4\n", "a\n",
    "0 1\n", "1-2-3\n", "0;1\n", "1234567890\n", "0x3\n",
};

Test(numa, refuses_a_cpulist_that_does_not_parse)
{
    char *root = tu_mkdtemp();
    for (size_t i = 0; i < sizeof bad_cpulists / sizeof bad_cpulists[0]; i++) {
        put(root, "sys/devices/system/node/node0/cpulist", bad_cpulists[i]);
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(42, &s);
        cr_expect_eq(trestle__numa_node_cpus(0, root, &s), EINVAL, "cpulist \"%s\"",
                     bad_cpulists[i]);
        cr_expect(CPU_ISSET(42, &s) && CPU_COUNT(&s) == 1, "cpulist \"%s\": set left untouched",
                  bad_cpulists[i]);
    }
    tu_rmtree(root);
    free(root);
}

Test(numa, says_why_when_a_node_cannot_be_read)
{
    char *root = two_socket_tree();
    cpu_set_t s;
    cr_assert_eq(trestle__numa_node_cpus(5, root, &s), ENOENT);
    cr_assert_eq(trestle__numa_node_cpus(-1, root, &s), EINVAL);
    cr_assert_eq(trestle__numa_node_cpus(TRESTLE__NUMA_MAX_NODES, root, &s), EINVAL);
    tu_rmtree(root);
    free(root);
}

Test(numa, reads_the_hosts_own_node_zero_with_an_empty_sysroot)
{
    if (access("/sys/devices/system/node/node0/cpulist", R_OK) != 0)
        cr_skip_test("this host's sysfs has no node0 (kernel without NUMA)");
    cpu_set_t s;
    cr_assert_eq(trestle__numa_node_cpus(0, "", &s), 0);
}

/* ---- binding memory to a node ---- */

#define BIND_PAGES 4

/*
 * The policy of the page at p: MPOL_* into *mode, and its nodes as one
 * word into *mask (~0UL when a node past 63 is set); 0 or errno. The mask
 * is as wide as any kernel's node count, which get_mempolicy insists on.
 */
static int policy_of(void *p, int *mode, unsigned long *mask)
{
    unsigned long m[TRESTLE__NUMA_MAX_NODES / (8 * sizeof(unsigned long))] = { 0 };
    if (syscall(SYS_get_mempolicy, mode, m, (unsigned long)TRESTLE__NUMA_MAX_NODES + 1, p,
                MPOL_F_ADDR) != 0)
        return errno;
    *mask = m[0];
    for (size_t i = 1; i < sizeof m / sizeof m[0]; i++)
        if (m[i])
            *mask = ~0UL;
    return 0;
}

static void *fresh_pages(size_t *len)
{
    *len = BIND_PAGES * (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

Test(numa, binds_fresh_pages_to_a_node_or_says_exactly_why_not)
{
    size_t len;
    unsigned char *p = fresh_pages(&len);
    int rc = trestle__numa_bind(p, len, 0);
    int mode = -1;
    unsigned long mask;
    if (rc == 0) {
        cr_assert_eq(policy_of(p + len - 1, &mode, &mask), 0);
        cr_assert_eq(mode, MPOL_PREFERRED, "the whole range is bound");
        cr_assert_eq(mask, 1UL, "to node 0 only");
        memset(p, 0xa5, len);
        int node = -1;
        cr_assert_eq(syscall(SYS_get_mempolicy, &node, NULL, 0, p, MPOL_F_NODE | MPOL_F_ADDR), 0);
        cr_assert_eq(node, 0, "first touch placed the page on node 0");
    } else {
        /* No NUMA in the kernel, or seccomp (Docker without CAP_SYS_NICE). */
        cr_assert(rc == ENOSYS || rc == EPERM, "mbind refused with %s", strerror(rc));
        if (policy_of(p, &mode, &mask) == 0)
            cr_assert_eq(mode, MPOL_DEFAULT, "the range keeps its policy");
        memset(p, 0xa5, len); /* and stays usable */
    }
    cr_assert_eq(p[len - 1], 0xa5);
    munmap(p, len);
}

Test(numa, refuses_a_node_without_memory_as_the_kernel_does)
{
    size_t len;
    void *p = fresh_pages(&len);
    int probe = trestle__numa_bind(p, len, 0);
    int rc = trestle__numa_bind(p, len, TRESTLE__NUMA_MAX_NODES - 1);
    /* Where mbind runs, a node that is not online is EINVAL; where it is
     * refused, it is refused the same way whatever the node. */
    cr_assert_eq(rc, probe == 0 ? EINVAL : probe, "got %s", strerror(rc));
    munmap(p, len);
}

Test(numa, refuses_bad_arguments_before_asking_the_kernel)
{
    size_t len;
    unsigned char *p = fresh_pages(&len);
    cr_assert_eq(trestle__numa_bind(p + 1, len - 1, 0), EINVAL, "start not page-aligned");
    cr_assert_eq(trestle__numa_bind(NULL, len, 0), EINVAL);
    cr_assert_eq(trestle__numa_bind(p, len, -1), EINVAL, "no node is not a node");
    cr_assert_eq(trestle__numa_bind(p, len, TRESTLE__NUMA_MAX_NODES), EINVAL);
    cr_assert_eq(trestle__numa_bind(p, 0, 0), 0, "no pages: nothing to place");
    int mode = -1;
    unsigned long mask;
    if (policy_of(p, &mode, &mask) == 0)
        cr_assert_eq(mode, MPOL_DEFAULT, "nothing was bound");
    munmap(p, len);
}

/* ---- pinning threads ---- */

/* The first CPU in s, or -1. */
static int first_cpu(const cpu_set_t *s)
{
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, s))
            return c;
    return -1;
}

/* A CPU this thread may not run on, or -1 if it may run on all of them. */
static int forbidden_cpu(const cpu_set_t *allowed)
{
    for (int c = CPU_SETSIZE - 1; c >= 0; c--)
        if (!CPU_ISSET(c, allowed))
            return c;
    return -1;
}

static void affinity(cpu_set_t *s)
{
    cr_assert_eq(pthread_getaffinity_np(pthread_self(), sizeof *s, s), 0);
}

/* A restore worker: pins itself to a node's CPUs. Criterion asserts only
 * in the test's own thread, so the worker reports and the test judges. */
typedef struct pin_job {
    cpu_set_t cpus;  /* the node's */
    int rc;          /* trestle__numa_pin_thread */
    cpu_set_t after; /* the worker's affinity then */
    int ran_on;      /* sched_getcpu then */
} pin_job;

static void *pin_worker(void *arg)
{
    pin_job *j = arg;
    j->rc = trestle__numa_pin_thread(&j->cpus, NULL);
    pthread_getaffinity_np(pthread_self(), sizeof j->after, &j->after);
    j->ran_on = sched_getcpu();
    return NULL;
}

Test(numa, pins_a_thread_to_the_cpus_of_its_node_it_may_use)
{
    cpu_set_t allowed;
    affinity(&allowed); /* what a new thread inherits */
    int c = first_cpu(&allowed);
    int far = forbidden_cpu(&allowed);
    char list[64];
    if (far >= 0)
        snprintf(list, sizeof list, "%d,%d\n", c, far);
    else
        snprintf(list, sizeof list, "%d\n", c);
    char *root = tu_mkdtemp();
    put(root, "sys/devices/system/node/node0/cpulist", list);
    pin_job j = { .rc = -1 };
    cr_assert_eq(trestle__numa_node_cpus(0, root, &j.cpus), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, pin_worker, &j), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(j.rc, 0, "%s", strerror(j.rc));
    cr_assert_eq(CPU_COUNT(&j.after), 1, "pinned to the node's one allowed CPU, never widened");
    cr_assert(CPU_ISSET(c, &j.after));
    cr_assert_eq(j.ran_on, c, "and it runs there");
    cpu_set_t mine;
    affinity(&mine);
    cr_assert(CPU_EQUAL(&mine, &allowed), "only the worker was pinned");
    tu_rmtree(root);
    free(root);
}

Test(numa, leaves_a_thread_alone_when_none_of_the_cpus_are_its_own)
{
    cpu_set_t before, none, after;
    affinity(&before);
    int far = forbidden_cpu(&before);
    if (far < 0)
        cr_skip_test("this thread may run on all %d CPUs a cpu_set_t can name", CPU_SETSIZE);
    CPU_ZERO(&none);
    CPU_SET(far, &none);
    cpu_set_t old;
    CPU_ZERO(&old);
    cr_assert_eq(trestle__numa_pin_thread(&none, &old), EINVAL);
    CPU_ZERO(&none); /* a node with memory only */
    cr_assert_eq(trestle__numa_pin_thread(&none, &old), EINVAL);
    affinity(&after);
    cr_assert(CPU_EQUAL(&before, &after), "affinity unchanged");
    cr_assert_eq(CPU_COUNT(&old), 0, "and nothing to put back");
}

/* The caller's thread, pinned while staging is registered, goes back. */
Test(numa, gives_back_the_affinity_a_borrowed_thread_had)
{
    cpu_set_t before, node, old, during, after;
    affinity(&before);
    CPU_ZERO(&node);
    CPU_SET(first_cpu(&before), &node);
    cr_assert_eq(trestle__numa_pin_thread(&node, &old), 0);
    affinity(&during);
    cr_assert(CPU_EQUAL(&during, &node));
    cr_assert(CPU_EQUAL(&old, &before), "old is the affinity before");
    cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof old, &old), 0);
    affinity(&after);
    cr_assert(CPU_EQUAL(&after, &before));
}

/* ---- the CUDA device's node ---- */

Test(numa, knows_no_node_for_a_device_that_is_not_there)
{
    char *root = two_socket_tree();
    cr_assert_eq(trestle__cuda_device_numa_node(-1, root), -1);
    tu_rmtree(root);
    free(root);
}

#if TRESTLE_CUDA_MOCK

#include <cuda_runtime_api.h>

#include "cudamock.h"

Test(numa_cuda, mock_devices_have_distinct_uppercase_bus_ids)
{
    char id0[32], id1[32];
    cr_assert_eq(cudaDeviceGetPCIBusId(id0, sizeof id0, 0), cudaSuccess);
    cr_assert_eq(cudaDeviceGetPCIBusId(id1, sizeof id1, 1), cudaSuccess);
    cr_assert_str_eq(id0, "0000:1B:00.0");
    cr_assert_str_eq(id1, "0000:3B:00.0");
    cr_assert_eq(cudaDeviceGetPCIBusId(id0, 5, 0), cudaSuccess);
    cr_assert_str_eq(id0, "0000", "cut to fit, as the runtime does");
}

Test(numa_cuda, finds_the_node_of_each_device)
{
    char *root = two_socket_tree();
    cr_assert_eq(trestle__cuda_device_numa_node(0, root), 0);
    cr_assert_eq(trestle__cuda_device_numa_node(1, root), 1);
    tu_rmtree(root);
    free(root);
}

Test(numa_cuda, follows_the_bus_ids_the_environment_gives)
{
    char *root = two_socket_tree();
    cr_assert_eq(setenv("TRESTLE_CUDAMOCK_PCI_BUS_IDS", "0000:3b:00.0,0000:1B:00.0", 1), 0);
    cr_assert_eq(trestle__cuda_device_numa_node(0, root), 1);
    cr_assert_eq(trestle__cuda_device_numa_node(1, root), 0);
    cr_assert_eq(setenv("TRESTLE_CUDAMOCK_PCI_BUS_IDS", "0000:af:00.0,bogus", 1), 0);
    cr_assert_eq(trestle__cuda_device_numa_node(0, root), -1, "a device sysfs does not list");
    cr_assert_eq(trestle__cuda_device_numa_node(1, root), -1, "an id that does not parse");
    tu_rmtree(root);
    free(root);
}

Test(numa_cuda, a_lookup_creates_no_context)
{
    char *root = two_socket_tree();
    cr_assert_eq(trestle__cuda_device_numa_node(1, root), 1);
    cr_assert_not(cudamock_has_primary(0));
    cr_assert_not(cudamock_has_primary(1));
    tu_rmtree(root);
    free(root);
}

Test(numa_cuda, a_lookup_keeps_the_callers_pending_error_and_reads_none)
{
    char *root = two_socket_tree();
    cr_assert_eq(cudaSetDevice(99), cudaErrorInvalidDevice); /* the caller's own mistake */
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle__cuda_device_numa_node(1, root), 1);
    cudamock_get_stats(&b);
    cr_assert_eq(b.last_error_calls, a.last_error_calls, "the lookup read the last error");
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidDevice, "the caller's error was cleared");
    tu_rmtree(root);
    free(root);
}

/* A failed CUDA call leaves its error as the thread's last, like any
 * other; the lookup takes its result from the call and clears nothing. */
Test(numa_cuda, a_failed_lookup_is_unknown_and_reads_no_error)
{
    char *root = two_socket_tree();
    cudamock_stats a, b;
    cudamock_get_stats(&a);
    cr_assert_eq(trestle__cuda_device_numa_node(2, root), -1, "the mock has two devices");
    cudamock_fail("cudaDeviceGetPCIBusId", 1, cudaErrorUnknown, 0);
    cr_assert_eq(trestle__cuda_device_numa_node(0, root), -1);
    cudamock_get_stats(&b);
    cr_assert_eq(b.last_error_calls, a.last_error_calls, "the lookup read the last error");
    cr_assert_eq(cudaGetLastError(), cudaErrorUnknown);
    cr_assert_eq(trestle__cuda_device_numa_node(0, root), 0, "one failure was armed");
    tu_rmtree(root);
    free(root);
}

#endif /* TRESTLE_CUDA_MOCK */
