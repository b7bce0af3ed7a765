#include "spendwall_smtp.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t sw_curl_once = PTHREAD_ONCE_INIT;
static void sw_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct {
    const char *data;
    size_t length;
    size_t offset;
} sw_upload;

static size_t sw_read(char *buffer, size_t size, size_t count, void *userdata) {
    sw_upload *upload = userdata;
    size_t room = size * count;
    size_t left = upload->length - upload->offset;
    size_t n = left < room ? left : room;
    memcpy(buffer, upload->data + upload->offset, n);
    upload->offset += n;
    return n;
}

int sw_smtp_send(const char *url, const char *username, const char *password, const char *from,
                 const char *const *recipients, size_t recipient_count, const char *message,
                 size_t message_length, int require_tls, const char *ca_file, long timeout_ms,
                 sw_smtp_result *result) {
    pthread_once(&sw_curl_once, sw_curl_init);
    memset(result, 0, sizeof(*result));
    CURL *curl = curl_easy_init();
    if (!curl) {
        result->curl_code = CURLE_FAILED_INIT;
        snprintf(result->error, sizeof(result->error), "curl_easy_init failed");
        return result->curl_code;
    }
    char mail_from[512];
    snprintf(mail_from, sizeof(mail_from), "<%s>", from);
    struct curl_slist *rcpt = NULL;
    for (size_t i = 0; i < recipient_count; i++) {
        char to[512];
        snprintf(to, sizeof(to), "<%s>", recipients[i]);
        rcpt = curl_slist_append(rcpt, to);
    }
    sw_upload upload = {message, message_length, 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, result->error);
    if (username) curl_easy_setopt(curl, CURLOPT_USERNAME, username);
    if (password) curl_easy_setopt(curl, CURLOPT_PASSWORD, password);
    curl_easy_setopt(curl, CURLOPT_USE_SSL, require_tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
    if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, sw_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    CURLcode code = curl_easy_perform(curl);
    long reply = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
    result->curl_code = (int)code;
    result->smtp_code = reply;
    if (code != CURLE_OK && result->error[0] == 0) {
        snprintf(result->error, sizeof(result->error), "%s", curl_easy_strerror(code));
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return (int)code;
}
