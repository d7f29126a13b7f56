"""Check trestle's S3 request signatures against an independent signer.

Usage: sigv4_check.py ACCESS_LOG KEY_ID SECRET TOKEN REGION

Every line of the nginx access log (tests/remote_server.c's format) that
carries an AWS4-HMAC-SHA256 Authorization is signed again by botocore's
S3SigV4Auth (Debian's python3-botocore), over the same method, URL, query,
date and the headers the request says it signed; the two Authorization
values must be equal byte for byte. Prints "N requests signed as botocore
signs them" and exits 0, or names the first line that differs and exits 1.
"""
import re
import sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LINE = re.compile(r'^(\S+) (\S+) "(.*?)" (\d+) (\d+) "(.*?)" (\S+) "(.*?)" "(.*?)" "(.*?)" '
                  r'"(.*?)" "(.*?)" "(.*?)" "(.*?)" \d+$')


def unescape(value):
    """nginx logs bytes such as '"' as \\xNN."""
    return re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


def main():
    log, key, secret, token, region = sys.argv[1:6]
    auth = S3SigV4Auth(Credentials(key, secret, token or None), "s3", region)
    checked = 0
    with open(log, encoding="utf-8") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m or not m.group(8).startswith("AWS4-HMAC-SHA256 "):
                continue
            (method, uri, args, _status, _bytes, _range, _proto, given, date, sha, tok,
             if_match, host, checksum_mode) = (unescape(g) for g in m.groups())
            signed = re.search(r"SignedHeaders=([^,]+)", given).group(1).split(";")
            values = {"x-amz-date": date, "x-amz-content-sha256": sha,
                      "x-amz-security-token": tok, "if-match": if_match, "host": host,
                      "x-amz-checksum-mode": checksum_mode}
            unknown = [h for h in signed if h not in values]
            if unknown:
                print(f"{line.strip()}: signs headers this check cannot see: {unknown}")
                return 1
            headers = {h: values[h] for h in signed}
            url = f"http://{host}{uri}" + (f"?{args}" if args and args != "-" else "")
            request = AWSRequest(method=method, url=url, headers=headers)
            request.context["timestamp"] = date
            canonical = auth.canonical_request(request)
            signature = auth.signature(auth.string_to_sign(request, canonical), request)
            want = (f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
                    f"SignedHeaders={';'.join(signed)}, Signature={signature}")
            if want != given:
                print(f"{method} {uri}: trestle sent\n  {given}\nbotocore signs\n  {want}\n"
                      f"canonical request:\n{canonical}")
                return 1
            checked += 1
    print(f"{checked} requests signed as botocore signs them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
