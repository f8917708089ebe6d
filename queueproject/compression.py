"""Compressed responses (gzip), except those that carry a secret next to text a request chose.

BREACH recovers a secret from the size of compressed responses that also reflect an attacker's text.
gpuq's pages carry a CSRF token, which Django masks anew for every response, and Django's gzip adds
random padding to every compressed response ("Heal The Breach"); the API authenticates with a header, not
a cookie-bound secret in the body. What stays uncompressed: the responses that show an API token's key
(the tokens page and `/api/v1/tokens`) and the login pages, where the size saved is nothing anyway."""

from django.middleware import gzip

UNCOMPRESSED_PREFIXES = ("/tokens/", "/api/v1/tokens", "/accounts/")


class GZipMiddleware(gzip.GZipMiddleware):
    def process_response(self, request, response):
        if request.path.startswith(UNCOMPRESSED_PREFIXES):
            return response
        return super().process_response(request, response)
