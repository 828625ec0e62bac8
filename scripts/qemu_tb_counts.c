/* A QEMU TCG plugin (plugin API version 1, QEMU 7.x) that counts how often
 * each translation block runs and writes, at exit, one line per block that
 * ran: "START_PC INSTRUCTIONS EXECUTIONS" (hex, decimal, decimal).
 * scripts/firmware_profile.py turns that into instructions per operator,
 * function and source line.
 *
 * The few plugin declarations needed are written out here instead of
 * including qemu-plugin.h, so that no QEMU development package is needed:
 * they are the stable v1 ABI of include/qemu/qemu-plugin.h.
 *
 * Build: cc -O2 -shared -fPIC -o libtbcounts.so qemu_tb_counts.c
 * Use:   qemu-system-arm ... -plugin ./libtbcounts.so,out=counts.txt */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                                     void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* A block translated again (after a TB flush) gets a new slot; the script
 * adds slots with the same start. One vCPU (Cortex-M), so the inline add
 * needs no atomics. */
#define MAX_BLOCKS (1 << 20)
static struct {
  uint64_t pc, insns, runs;
} blocks[MAX_BLOCKS];
static size_t used;
static int overflowed;
static char out_path[4096] = "tb-counts.txt";

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  if (used >= MAX_BLOCKS) {
    overflowed = 1;
    return;
  }
  blocks[used].pc = qemu_plugin_tb_vaddr(tb);
  blocks[used].insns = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &blocks[used].runs, 1);
  used++;
}

static void on_exit(qemu_plugin_id_t id, void *unused) {
  (void)id;
  (void)unused;
  FILE *f = fopen(out_path, "w");
  if (!f) {
    fprintf(stderr, "qemu_tb_counts: cannot write %s\n", out_path);
    return;
  }
  if (overflowed)
    fprintf(f, "# incomplete: more than %d translated blocks\n", MAX_BLOCKS);
  for (size_t i = 0; i < used; i++)
    if (blocks[i].runs)
      fprintf(f, "%llx %llu %llu\n", (unsigned long long)blocks[i].pc,
              (unsigned long long)blocks[i].insns, (unsigned long long)blocks[i].runs);
  fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const void *info, int argc,
                                                               char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "out=", 4) == 0) {
      strncpy(out_path, argv[i] + 4, sizeof out_path - 1);
      out_path[sizeof out_path - 1] = 0;
    }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_exit, NULL);
  return 0;
}
