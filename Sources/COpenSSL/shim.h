#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/opensslv.h>

// OpenSSL_version_num() is a real function, but several useful APIs are macros that Swift
// cannot import; wrap the ones drtc needs here.
static inline unsigned long drtc_openssl_version_num(void) { return OpenSSL_version_num(); }
