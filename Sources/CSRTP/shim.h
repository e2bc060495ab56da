#include <srtp2/srtp.h>

// Constants defined as macros with arithmetic, which Swift does not import.
static inline int drtc_srtp_max_trailer_len(void) { return SRTP_MAX_TRAILER_LEN; }
