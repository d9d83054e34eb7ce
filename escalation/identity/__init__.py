"""Who acts: signed credentials (JWTs) that every command carries in a Temporal header, and the keys (a JWKS)
that sign and verify them. See `credentials` for what a credential holds and how it is checked, `keys` for key
files, URLs and rotation, `settings` for ESCALATIONS_IDENTITY__* and ESCALATIONS_CREDENTIAL."""

from escalation.identity.credentials import (
    AUDIENCE,
    CUSTOMER,
    HEADER,
    SYSTEM,
    Claims,
    CredentialRefused,
    Signer,
    Verifier,
    header_payload,
    token_from_header,
    unverified_claims,
)
from escalation.identity.keys import ALGORITHMS, KeyProblem, ensure_key, new_key
from escalation.identity.settings import CREDENTIAL_ENV, IdentitySettings

__all__ = [
    "ALGORITHMS",
    "AUDIENCE",
    "CREDENTIAL_ENV",
    "CUSTOMER",
    "HEADER",
    "SYSTEM",
    "Claims",
    "CredentialRefused",
    "IdentitySettings",
    "KeyProblem",
    "Signer",
    "Verifier",
    "ensure_key",
    "header_payload",
    "new_key",
    "token_from_header",
    "unverified_claims",
]
