/* Preloaded before libfaketime by test_clock_skew.py.
 *
 * libfaketime (Debian 0.9.10) shifts the absolute deadline of every timerfd by its fake
 * offset, even with DONT_FAKE_MONOTONIC=1. libdispatch arms CLOCK_MONOTONIC and CLOCK_BOOTTIME
 * timerfds with absolute deadlines for Swift's Task.sleep: under `faketime -f -5m` every sleep
 * then lasts five minutes more, and under `+5m` the timers fire at once and spin until due.
 * These two functions hand timerfd calls to the kernel unchanged; the wall clock
 * (clock_gettime(CLOCK_REALTIME), gettimeofday, time) stays faked by libfaketime. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value) {
    return (int)syscall(SYS_timerfd_settime, fd, flags, new_value, old_value);
}

int timerfd_gettime(int fd, struct itimerspec *curr_value) {
    return (int)syscall(SYS_timerfd_gettime, fd, curr_value);
}
