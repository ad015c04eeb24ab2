/*
 * The benchmark suite's AVX2 pass, for every library at once: preloaded into a process
 * (LD_PRELOAD), this makes the CPU look like an AVX2 + FMA one without AVX-512, so that every
 * library that chooses its kernels from the `cpuid` instruction (onnxruntime's MLAS, PyTorch's
 * cpuinfo, oneDNN and MKL, OpenBLAS, V8, gyre's own detection) picks its AVX2 code.
 *
 * How: Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0); Intel CPUs since Ivy Bridge and
 * KVM guests have it) makes every `cpuid` in the process raise SIGSEGV. The handler here runs
 * the real `cpuid` (faulting off for that one instruction), clears the AVX-512 and AMX bits of
 * leaf 7 (sub-leaves 0 and 1) and the AVX-512 state components of leaf 0xD, writes the result
 * into the interrupted registers and steps over the instruction. The setting is inherited by
 * the process's threads and reset by execve (a child process preloads this again).
 *
 * Programs install their own SIGSEGV handlers (Node resets every handler at start; V8 and Node
 * handle WebAssembly traps): `sigaction` is wrapped so that they register behind this one,
 * which passes them every fault that is not a `cpuid`.
 *
 * What it does not do: the CPU is still this one (its caches, ports and clocks), and XCR0 still
 * enables the AVX-512 state; software that skips `cpuid` and tries AVX-512 instructions directly
 * would still run them. Built and checked by benchmark/run.mjs:
 *   cc -O2 -shared -fPIC -o avx2_cpu.so avx2_cpu.c -ldl
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static sigaction_fn real_sigaction;
/* The SIGSEGV action the program asked for, run for every fault that is not a `cpuid`. */
static struct sigaction program_action;
static int installed;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

/* Leaf 7 sub-leaf 0: EBX AVX512F (16), DQ (17), IFMA (21), PF (26), ER (27), CD (28), BW (30),
 * VL (31); ECX VBMI (1), VBMI2 (6), VNNI (11), BITALG (12), VPOPCNTDQ (14); EDX 4VNNIW (2),
 * 4FMAPS (3), VP2INTERSECT (8), AMX-BF16 (22), AVX512-FP16 (23), AMX-TILE (24), AMX-INT8 (25).
 * Sub-leaf 1: EAX AVX-VNNI (4), AVX512-BF16 (5). Leaf 0xD sub-leaf 0: EAX the opmask and ZMM
 * state components (5–7) and AMX's (17, 18). */
static void as_avx2(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    r[0] &= ~((1u << 4) | (1u << 5));
  } else if (leaf == 0xd && sub == 0) {
    r[0] &= ~(0xe0u | (1u << 17) | (1u << 18));
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = context;
  greg_t *g = uc->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)g[REG_RIP];
  /* A faulting `cpuid` (0F A2) raises SIGSEGV with SI_KERNEL, as a general protection fault. */
  if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
    real_cpuid(leaf, sub, r);
    as_avx2(leaf, sub, r);
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
    return;
  }
  if (program_action.sa_flags & SA_SIGINFO) {
    if (program_action.sa_sigaction) {
      program_action.sa_sigaction(sig, info, context);
      return;
    }
  } else if (program_action.sa_handler != SIG_DFL && program_action.sa_handler != SIG_IGN) {
    program_action.sa_handler(sig);
    return;
  }
  /* The default action: returning re-runs the faulting instruction, which now kills the process. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  real_sigaction(sig, &dfl, 0);
}

__attribute__((constructor)) static void start(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  if (real_sigaction && real_sigaction(SIGSEGV, &sa, &program_action) == 0 &&
      syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) == 0)
    installed = 1;
}

/* The program's SIGSEGV action is kept behind on_segv's; every other signal is the real call's. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  if (sig == SIGSEGV && installed) {
    if (old) *old = program_action;
    if (act) program_action = *act;
    return 0;
  }
  return real_sigaction(sig, act, old);
}
