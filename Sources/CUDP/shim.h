// sendmmsg(2) and recvmmsg(2) for the media sockets' own I/O (Sources/MediaNIO/Datagram*.swift),
// and an eventfd(2) that wakes their reader when its set of sockets changes.
// glibc declares `struct mmsghdr` and both functions only under _GNU_SOURCE, which Swift's Glibc
// module is not built with; this header declares a struct of the same layout (Linux
// include/linux/socket.h: a msghdr, then the number of bytes sent or received) and the
// functions themselves.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct mmsghdr;
extern int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags);
extern int recvmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags, struct timespec *timeout);

typedef struct drtc_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} drtc_mmsghdr;

/// Sends up to `vlen` datagrams; the number sent, or -1 with errno when the first one failed.
/// The kernel stops at the first datagram that fails and reports only the count before it.
static inline int drtc_sendmmsg(int fd, drtc_mmsghdr *msgs, unsigned int vlen) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, vlen, 0);
}

/// Receives up to `vlen` datagrams without blocking; the number received, or -1 with errno.
static inline int drtc_recvmmsg(int fd, drtc_mmsghdr *msgs, unsigned int vlen) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, vlen, MSG_DONTWAIT, 0);
}

/// A non-blocking, close-on-exec eventfd; -1 with errno on failure.
static inline int drtc_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

// Thread placement for `drtc-bench sfu-forward` (sched.h's cpu_set_t macros and
// sched_setaffinity are _GNU_SOURCE-only too).
#include <sys/syscall.h>
#include <unistd.h>

/// Pins thread `tid` (0: the caller) to CPU `cpu`; 0, or -1 with errno.
static inline int drtc_pin_thread(int tid, int cpu) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
    if (cpu < 0 || cpu >= 1024) return -1;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    return (int)syscall(SYS_sched_setaffinity, tid, sizeof(mask), mask);
}

/// The caller's thread id.
static inline int drtc_gettid(void) { return (int)syscall(SYS_gettid); }
