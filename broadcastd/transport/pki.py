"""The commune's own PKI for the speakers' TLS listener: a CA and a server certificate.

No outside CA is needed or trusted: a commune server often has no public name a public CA would
certify, and speakers are provisioned by the commune anyway. `init` makes a CA (EC P-256, ten
years) and a server certificate for `broker.public` (its host and addresses); `renew` makes a new
server key and certificate from the same CA, so speakers, which hold only the CA certificate,
need nothing new. Everything lives in `state_dir/tls/`; the keys are 0600, written through
privatefiles (never through a path another local user prepared), the CA key never overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broadcastd.errors import BroadcastdError
from broadcastd.transport.privatefiles import private_dir, replace, write_new

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import Config
    from broadcastd.config.brokercfg import PublicListener

CA_DAYS = 3650  # the CA outlives any speaker: changing it means re-provisioning every one
# Short enough that a leaked server key stops mattering within a renewal cycle, long enough
# that a commune renews once a year and `check` warns a month ahead.
SERVER_DAYS = 397
WARN_DAYS = 30
_CERT_MODE = 0o644  # public; the directory (state_dir, 0700) still keeps other users out


class PkiError(BroadcastdError):
    """The commune CA or server certificate is missing, unreadable or cannot be made."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the commune's TLS material lives: `state_dir/tls/`."""

    directory: Path

    @classmethod
    def for_config(cls, config: Config) -> TlsFiles:
        return cls(config.state_dir / "tls")

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def server_cert(self) -> Path:
        """The server certificate followed by the CA's, so a client sees the whole chain."""
        return self.directory / "server.crt"


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What an operator needs to know of one certificate."""

    subject: str
    not_after: dt.datetime
    sha256: str  # fingerprint, hex with colons (as `openssl x509 -fingerprint -sha256` shows it)
    dns_names: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def near_expiry(self, now: dt.datetime) -> bool:
        """Within WARN_DAYS of its end, or past it: `check` and the console's overview warn."""
        return self.days_left(now) < WARN_DAYS

    def missing(self, public: PublicListener) -> list[str]:
        """The names and addresses of `public` this certificate does not carry."""
        absent = [public.host] if public.host not in self.dns_names else []
        return absent + [a for a in public.addresses if a not in self.addresses]


def trust_anchor(config: Config) -> Path | None:
    """The CA certificate speakers verify the broker with: the commune CA for the embedded
    broker's TLS listener, an external broker's `ca_file`; None for plain MQTT, or a TLS broker
    with a certificate from a public CA (the speaker's system trust)."""
    if not config.broker.url_for_nodes.startswith("mqtts://"):
        return None
    if config.broker.mode == "embedded":
        return TlsFiles.for_config(config).ca_cert
    return config.broker.ca_file


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_certificate(
    commune: str, key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"broadcastd {commune}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"broadcastd {commune} commune CA"),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # a speaker's clock a little behind
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    public: PublicListener,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(public.host)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in public.addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, public.host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _public(config: Config) -> PublicListener:
    if config.broker.public is None:
        raise PkiError(
            "broker.public is not set: say the host name (and addresses) speakers reach the "
            "office by, e.g. public: {host: loa.example.vn, port: 8883}"
        )
    return config.broker.public


def init(config: Config, *, now: dt.datetime | None = None) -> tuple[CertInfo, CertInfo]:
    """Create the commune CA and a server certificate; never replaces an existing CA."""
    public, files, when = _public(config), TlsFiles.for_config(config), now or _now()
    if files.ca_key.exists() or files.ca_cert.exists():
        raise PkiError(
            f"{files.ca_cert}: the commune CA exists, not replaced (speakers trust it); "
            "`broadcastd tls renew` makes a new server certificate from it"
        )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(config.commune.id, ca_key, when)
    with private_dir(files.directory, fresh=False) as fd:
        write_new(fd, files.ca_key.name, _key_pem(ca_key))
        write_new(fd, files.ca_cert.name, _cert_pem(ca), mode=_CERT_MODE)
    return describe(ca), _issue_server(public, files, ca, ca_key, when)


def renew(config: Config, *, now: dt.datetime | None = None) -> tuple[CertInfo, CertInfo]:
    """A new server key and certificate for `broker.public`, from the existing CA."""
    public, files = _public(config), TlsFiles.for_config(config)
    ca, ca_key = load_ca(files)
    return describe(ca), _issue_server(public, files, ca, ca_key, now or _now())


def _issue_server(
    public: PublicListener,
    files: TlsFiles,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> CertInfo:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(public, key, ca, ca_key, now)
    with private_dir(files.directory, fresh=False) as fd:
        # The key first: mosquitto reads both only at start and on SIGHUP, after both renames.
        replace(fd, files.server_key.name, _key_pem(key))
        replace(fd, files.server_cert.name, _cert_pem(cert) + _cert_pem(ca), mode=_CERT_MODE)
    return describe(cert)


def load_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key; PkiError naming what is missing or wrong."""
    ca = read_certificate(files.ca_cert, hint="create the commune CA with `broadcastd tls init`")
    try:
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    except FileNotFoundError:
        raise PkiError(
            f"{files.ca_key}: no commune CA key; create the CA with `broadcastd tls init`"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{files.ca_key}: unreadable CA key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != ca.public_key():
        raise PkiError(f"{files.ca_key}: not the key of {files.ca_cert}")
    return ca, key


def read_certificate(path: Path, *, hint: str = "") -> x509.Certificate:
    """The first certificate in a PEM file; PkiError if it is missing or not a certificate."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise PkiError(f"{path}: no such certificate{'; ' + hint if hint else ''}") from None
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: unreadable certificate: {exc}") from None


def describe(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        dns_names=dns,
        addresses=ips,
    )


def status(files: TlsFiles) -> dict[str, CertInfo | PkiError]:
    """`ca` and `server`: each certificate described, or why it cannot be."""
    out: dict[str, CertInfo | PkiError] = {}
    for name, path, fix in (("ca", files.ca_cert, "init"), ("server", files.server_cert, "renew")):
        try:
            out[name] = describe(read_certificate(path, hint=f"run `broadcastd tls {fix}`"))
        except PkiError as exc:
            out[name] = exc
    return out
