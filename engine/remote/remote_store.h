/*
 * remote_store.h - the inside of a store (engine/remote/), shared by the
 * URL parser (remote_url.c), the credentials (remote_auth.c) and the
 * transfers that sign requests with them (remote_xfer.c). Everything here
 * is set once by trestle__store_open() and read-only afterwards.
 */
#ifndef TRESTLE_REMOTE_STORE_H
#define TRESTLE_REMOTE_STORE_H

#include "remote.h"

struct trestle__store {
    int kind;                  /* trestle__store_kind */
    trestle__remote_config cfg; /* defaults filled in */
    char *display_root;        /* "gs://bucket", "s3://bucket", "https://host:8443" */
    char *endpoint;            /* request base the key is appended to (with '/') */
    bool encode_keys;          /* percent-encode keys (s3, gs); http keys are URL paths already */
    char *query;               /* "?..." of the URL, carried to every object; NULL: none */
    char *bucket;              /* s3/gs bucket, or NULL */
    char *region;              /* s3: the region signed for */
    /* Credentials: the only secrets, never formatted into a message. */
    char *userpwd;             /* CURLOPT_USERPWD: "user:password" (http basic) or the AWS
                                  key id and secret for SigV4 */
    char *sigv4;               /* CURLOPT_AWS_SIGV4 parameter, or NULL: unsigned */
    char *auth_header;         /* "Authorization: Bearer ..." or NULL */
    char *token_header;        /* "x-amz-security-token: ..." or NULL */
    char *ca_bundle;           /* CA certificates file from the environment, or NULL */
    char auth_note[160];       /* where the credentials came from, e.g. "AWS_ACCESS_KEY_ID" */
};

/*
 * The first half of trestle__store_open(): parse `url` into a new store
 * (kind, bucket, display root, the configuration with its defaults), with
 * no credentials and, for gs:// and s3://, no endpoint yet. As
 * trestle__store_open() otherwise. The metadata server's own store
 * (remote_auth.c) is only this: it takes no credentials of ours.
 */
int trestle__store_parse(const char *url, const trestle__remote_config *cfg,
                         trestle__store **store, char **key, trestle_error *err);

/* The endpoint of a gs:// or s3:// store (STORAGE_EMULATOR_HOST,
 * AWS_ENDPOINT_URL, else the cloud's, from its region): after
 * trestle__store_auth(), which may find the region. TRESTLE_OK for http. */
int trestle__store_endpoint(trestle__store *s, trestle_error *err);

/*
 * Gather the credentials of `s` (kind, bucket and display_root set) from
 * the environment and the usual files, and its region (s3). Fills the
 * credential fields and auth_note. TRESTLE_E_IO naming the source when a
 * named source cannot be used (an AWS_PROFILE absent from the files, a
 * metadata server that gives no token); TRESTLE_E_NOMEM.
 */
int trestle__store_auth(trestle__store *s, trestle_error *err);

/* getenv(), but "" counts as unset. */
const char *trestle__env(const char *name);

#endif /* TRESTLE_REMOTE_STORE_H */
