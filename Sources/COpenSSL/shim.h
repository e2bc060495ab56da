#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>

// OpenSSL_version_num() is a real function, but several useful APIs are macros that Swift
// cannot import; wrap the ones drtc needs here.
static inline unsigned long drtc_openssl_version_num(void) { return OpenSSL_version_num(); }

// MARK: DTLS (macros over SSL_ctrl / SSL_CTX_ctrl)

static inline int drtc_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline int drtc_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}
/// Sets the DTLS record MTU (largest datagram OpenSSL writes). Needs SSL_OP_NO_QUERY_MTU.
static inline long drtc_SSL_set_mtu(SSL *ssl, long mtu) { return SSL_set_mtu(ssl, mtu); }
static inline long drtc_DTLS_set_link_mtu(SSL *ssl, long mtu) { return DTLS_set_link_mtu(ssl, mtu); }

/// DTLSv1_get_timeout: 1 and the time left (read from OpenSSL's own gettimeofday clock)
/// while a retransmission timer runs, 0 when none runs.
static inline int drtc_DTLSv1_get_timeout(SSL *ssl, long long *microsecondsLeft) {
    struct timeval tv = {0, 0};
    int running = (int)DTLSv1_get_timeout(ssl, &tv);
    *microsecondsLeft = running ? ((long long)tv.tv_sec * 1000000LL + (long long)tv.tv_usec) : 0;
    return running;
}
/// DTLSv1_handle_timeout: 1 retransmitted, 0 timer not expired (by OpenSSL's clock), -1 error.
static inline int drtc_DTLSv1_handle_timeout(SSL *ssl) { return (int)DTLSv1_handle_timeout(ssl); }

// MARK: BIO macros
static inline int drtc_BIO_set_mem_eof_return(BIO *bio, int value) {
    return (int)BIO_set_mem_eof_return(bio, value);
}

// MARK: keys (EVP_PKEY_Q_keygen is variadic)
/// A fresh ECDSA P-256 key pair, or NULL (see ERR_get_error).
static inline EVP_PKEY *drtc_generate_p256_key(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static inline long drtc_SSL_CTX_set_read_ahead(SSL_CTX *ctx, long yes) { return SSL_CTX_set_read_ahead(ctx, yes); }
static inline long drtc_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline int drtc_SSL_set_app_data(SSL *ssl, void *data) { return SSL_set_app_data(ssl, data); }
static inline void *drtc_SSL_get_app_data(const SSL *ssl) { return SSL_get_app_data(ssl); }
static inline int drtc_BIO_reset(BIO *bio) { return (int)BIO_reset(bio); }
/// SSL_OP_* are built from SSL_OP_BIT(n) (a cast + shift), which Swift does not import.
static inline uint64_t drtc_SSL_OP_NO_QUERY_MTU(void) { return SSL_OP_NO_QUERY_MTU; }
static inline uint64_t drtc_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
