"""How the OpenAPI schema describes gpuq's API tokens, so Swagger UI's *Authorize* takes a token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        # `Bearer <key>` is accepted as well as `Token <key>`: the standard bearer scheme fits.
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
