/*
 * remote_listing.h - an object store's listing read from its XML answer
 * (engine/remote/remote_listing.c). Separate from the requests that fetch
 * it (remote_sync.c), so that the one part that reads untrusted bytes can
 * be fuzzed alone.
 */
#ifndef TRESTLE_REMOTE_LISTING_H
#define TRESTLE_REMOTE_LISTING_H

#include <stddef.h>

/* Each <Key>...</Key> of a ListObjects answer (NUL-terminated `xml`) whose
 * text ends in `suffix`, appended to *keys (realloc'd; each key malloc'd)
 * and counted in *n. A key is XML character data: S3 and GCS write '&',
 * '<' and '>' as entities and may write any character as a reference
 * (&#N; or &#xH;), which are decoded; a malformed one stays as it is.
 * TRESTLE_OK, or TRESTLE_E_NOMEM (what was appended stays, for the caller
 * to free). */
int trestle__listing_keys(const char *xml, const char *suffix, char ***keys, size_t *n);

/* The <NextContinuationToken> of a truncated ListObjectsV2 page, as text
 * (malloc'd), or NULL on its last page (or when out of memory). */
char *trestle__listing_token(const char *xml);

#endif /* TRESTLE_REMOTE_LISTING_H */
