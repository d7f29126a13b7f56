/*
 * fuzz_listing.c - libFuzzer target for an object store's listing
 * (engine/remote/remote_listing.c): the XML answer a hostile or broken
 * store sends to ListObjectsV2, read for its keys and its continuation
 * token.
 *
 * Every key returned must be text that ends in the suffix asked for, and
 * no key or token may be longer than the input it came from (no reference
 * decodes to more bytes than it takes). Any crash, leak or sanitizer
 * report is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote_listing.h"
#include "trestle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size + 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);
    xml[size] = '\0'; /* a listing is read as a string, as the fetch gives it */
    static const char *const suffixes[] = { ".index", "" };
    for (size_t s = 0; s < sizeof suffixes / sizeof suffixes[0]; s++) {
        char **keys = NULL;
        size_t n = 0, sl = strlen(suffixes[s]);
        int rc = trestle__listing_keys(xml, suffixes[s], &keys, &n);
        for (size_t i = 0; i < n; i++) {
            size_t kl = strlen(keys[i]);
            if (rc == TRESTLE_OK && (kl < sl || memcmp(keys[i] + kl - sl, suffixes[s], sl) != 0 ||
                                     kl > size))
                abort();
            free(keys[i]);
        }
        free(keys);
    }
    char *token = trestle__listing_token(xml);
    if (token && strlen(token) > size)
        abort();
    free(token);
    free(xml);
    return 0;
}
