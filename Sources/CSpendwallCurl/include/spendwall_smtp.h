#ifndef SPENDWALL_SMTP_H
#define SPENDWALL_SMTP_H
#include <stddef.h>

/// The outcome of one SMTP submission through libcurl.
typedef struct {
    /// CURLcode (0: sent).
    int curl_code;
    /// The last SMTP reply code the server sent (0 when none was read).
    long smtp_code;
    /// libcurl's error text.
    char error[256];
} sw_smtp_result;

/// Sends one RFC 5322 message over SMTP with libcurl. `require_tls` refuses to go on unless
/// STARTTLS (smtp://) or implicit TLS (smtps://) succeeds; `ca_file` (may be NULL) replaces the
/// system's CA certificates. `username`/`password` may be NULL (no AUTH). Blocks up to
/// `timeout_ms`. Returns the CURLcode.
int sw_smtp_send(const char *url, const char *username, const char *password, const char *from,
                 const char *const *recipients, size_t recipient_count, const char *message,
                 size_t message_length, int require_tls, const char *ca_file, long timeout_ms,
                 sw_smtp_result *result);

#endif
