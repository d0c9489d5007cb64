"""Tokens crafted by hand, standard library only: P-256 ECDSA (ES256), RSA
PKCS#1 v1.5 (RS256), HMAC (HS256) and no signature at all, so that the suite
can sign valid tokens with keys it made (a stand-in issuer) and forge every
kind of invalid one against the real issuer.

The elliptic-curve and RSA code is textbook and slow (milliseconds per
signature): fine for a test, never for production."""

import base64
import hashlib
import hmac
import json
import secrets
import time

# --- encodings ---------------------------------------------------------------


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_bytes(value, length=None):
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = int_bytes(n)
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + body


def pem(label, body):
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def pem_blocks(text, label="PRIVATE KEY"):
    """The DER of every `label` block in `text` (indentation, as in YAML, ignored)."""
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    blocks = []
    rest = text
    while begin in rest:
        rest = rest.split(begin, 1)[1]
        body, _, rest = rest.partition(end)
        body = "".join(line.strip() for line in body.splitlines())
        try:
            blocks.append(base64.b64decode(body))
        except ValueError:
            continue
    return blocks


# --- P-256 --------------------------------------------------------------------

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
OID_EC = bytes.fromhex("06072a8648ce3d0201")
OID_P256 = bytes.fromhex("06082a8648ce3d030107")


def _add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _mul(k, point):
    result = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


class EcKey:
    """A P-256 key pair; `kid` is its RFC 7638 thumbprint unless given."""

    def __init__(self, d=None, kid=None):
        self.d = d or (secrets.randbelow(N - 1) + 1)
        self.x, self.y = _mul(self.d, G)
        self.kid = kid or self.thumbprint()

    @classmethod
    def from_pkcs8(cls, body):
        """The key of a PKCS#8 P-256 DER (the private scalar after `04 20`), or None."""
        if OID_EC not in body or OID_P256 not in body:
            return None
        at = body.find(b"\x02\x01\x01\x04\x20")
        return cls(int.from_bytes(body[at + 5 : at + 37], "big")) if at >= 0 else None

    def public_jwk(self):
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(int_bytes(self.x, 32)),
            "y": b64url(int_bytes(self.y, 32)),
        }

    def jwk(self):
        return {**self.public_jwk(), "kid": self.kid, "alg": "ES256", "use": "sig"}

    def thumbprint(self):
        members = json.dumps(self.public_jwk(), sort_keys=True, separators=(",", ":"))
        return b64url(hashlib.sha256(members.encode()).digest())

    def public_pem(self):
        """SubjectPublicKeyInfo PEM: the bytes a key-confusion forgery uses as HMAC secret."""
        point = b"\x04" + int_bytes(self.x, 32) + int_bytes(self.y, 32)
        spki = der(0x30, der(0x30, OID_EC + OID_P256) + der(0x03, b"\x00" + point))
        return pem("PUBLIC KEY", spki)

    def pkcs8_pem(self):
        point = b"\x04" + int_bytes(self.x, 32) + int_bytes(self.y, 32)
        ec_private = der(
            0x30,
            bytes.fromhex("020101")
            + der(0x04, int_bytes(self.d, 32))
            + der(0xA1, der(0x03, b"\x00" + point)),
        )
        algorithm = der(0x30, OID_EC + OID_P256)
        return pem("PRIVATE KEY", der(0x30, bytes.fromhex("020100") + algorithm + der(0x04, ec_private)))

    def sign(self, message):
        z = int.from_bytes(hashlib.sha256(message).digest(), "big")
        while True:
            k = secrets.randbelow(N - 1) + 1
            r = _mul(k, G)[0] % N
            s = pow(k, -1, N) * (z + r * self.d) % N
            if r and s:
                return int_bytes(r, 32) + int_bytes(s, 32)


def public_ec_jwk(jwk):
    """An EcKey-like object for a published JWK (no private part): for forgeries."""
    key = EcKey.__new__(EcKey)
    key.d = None
    key.x = int.from_bytes(b64url_decode(jwk["x"]), "big")
    key.y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    key.kid = jwk.get("kid")
    return key


# --- RSA ----------------------------------------------------------------------

SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _probable_prime(n):
    if n % 2 == 0:
        return False
    for small in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % small == 0:
            return n == small
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(24):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits):
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if _probable_prime(candidate):
            return candidate


class RsaKey:
    def __init__(self, bits, kid):
        e = 65537
        while True:
            p, q = _prime(bits // 2), _prime(bits // 2)
            phi = (p - 1) * (q - 1)
            if p != q and phi % e and (p * q).bit_length() == bits:
                break
        self.n, self.e, self.d = p * q, e, pow(e, -1, phi)
        self.kid = kid
        self.bits = bits

    def jwk(self):
        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": b64url(int_bytes(self.n)),
            "e": b64url(int_bytes(self.e)),
        }

    def sign(self, message):
        length = (self.n.bit_length() + 7) // 8
        digest = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        padded = b"\x00\x01" + b"\xff" * (length - len(digest) - 3) + b"\x00" + digest
        return int_bytes(pow(int.from_bytes(padded, "big"), self.d, self.n), length)


# --- tokens -------------------------------------------------------------------


def claims(issuer, audience, subject, scope="", ttl=300, **extra):
    now = int(time.time())
    body = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
        "scope": scope,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def encode(header, payload, signer):
    """A compact JWS; `signer(signing_input) -> bytes`, or None for an empty signature."""
    signing_input = (b64url(json.dumps(header)) + "." + b64url(json.dumps(payload))).encode()
    signature = signer(signing_input) if signer else b""
    return signing_input.decode() + "." + b64url(signature)


def es256(key, payload, **header):
    head = {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    head.update(header)
    head = {k: v for k, v in head.items() if v is not None}
    return encode(head, payload, key.sign)


def rs256(key, payload, **header):
    head = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    head.update(header)
    return encode(head, payload, key.sign)


def hs256(secret, payload, **header):
    head = {"alg": "HS256", "typ": "JWT"}
    head.update(header)
    return encode(head, payload, lambda data: hmac.new(secret, data, hashlib.sha256).digest())


def unsigned(payload, **header):
    head = {"alg": "none", "typ": "JWT"}
    head.update(header)
    return encode(head, payload, None)


def payload_of(token):
    """The claims of a token, unverified (to read what an issuer granted)."""
    return json.loads(b64url_decode(token.split(".")[1]))
