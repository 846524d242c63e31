"""The emulator's certificate authority, and the server certificates it issues per hostname.

Clients that keep their SDKs' defaults speak HTTPS. Through the emulator's proxy port they
open a ``CONNECT`` tunnel, and the emulator ends TLS itself, presenting a certificate for the
real hostname they asked for, issued by a CA of its own. Clients trust that CA through the
usual environment variables (``SSL_CERT_FILE``, ``AWS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``,
...), as moto's proxy mode does for AWS.

The CA is created once in its directory (``ca.pem``, ``ca-key.pem``) and reused, so a user
trusts it once. Its key is readable by its owner only and is never printed. The CA certificate
carries an X.509 name constraint: it vouches for ``aliyuncs.com`` names only, so trusting it
(or losing its key) cannot make any other site impersonable. ``ca-bundle.pem`` is certifi's
public roots plus this CA, for variables that replace the trust store instead of adding to it.

Server certificates are issued per exact hostname on first use and kept in memory (a virtual
hosted bucket gets its own), all with one key made at start. ``ssl`` loads them from files
only, so that key and each certificate pass through a private scratch folder.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import re
import shutil
import ssl
import tempfile
from collections import OrderedDict
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("aliasync.sim")

SERVED_DOMAIN = "aliyuncs.com"  # every hostname the emulator answers for is under it
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CA_BUNDLE_FILE = "ca-bundle.pem"
CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=30)
REISSUE_AFTER = datetime.timedelta(days=1)  # long-running emulators renew before expiry
CACHED_HOSTS = 4096
CA_NAME = "aliasync emulator CA"
COMMON_NAME_MAX = 64  # RFC 5280 ub-common-name
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def served_hostname(host: str) -> bool:
    """Whether ``host`` is a DNS name the CA may vouch for (under ``aliyuncs.com``)."""
    host = host.lower().rstrip(".")
    if len(host) > 253 or not (host == SERVED_DOMAIN or host.endswith("." + SERVED_DOMAIN)):
        return False
    return all(_LABEL.fullmatch(label) for label in host.split("."))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a server certificate signs handshakes only."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """The emulator's CA: loaded from its directory, or created there once."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.directory = directory
        self.cert = cert
        self._key = key

    def __repr__(self) -> str:  # the key never shows
        return f"CertificateAuthority({str(self.cert_path)!r})"

    @property
    def cert_path(self) -> Path:
        """The CA certificate alone (PEM): for variables that add to the trust store."""
        return self.directory / CA_CERT_FILE

    @property
    def bundle_path(self) -> Path:
        """certifi's roots plus the CA (PEM): for variables that replace the trust store."""
        return self.directory / CA_BUNDLE_FILE

    @classmethod
    def load_or_create(cls, directory: str | Path) -> CertificateAuthority:
        """The CA kept in ``directory``; a new one if there is none, or it is unusable.

        Concurrent emulators sharing the directory agree on one CA (a file lock).
        """
        folder = Path(directory)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(folder / ".ca.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ca = cls._load(folder)
            if ca is None:
                ca = cls._create(folder)
            ca._write_bundle()
        return ca

    @classmethod
    def _load(cls, folder: Path) -> CertificateAuthority | None:
        cert_path, key_path = folder / CA_CERT_FILE, folder / CA_KEY_FILE
        if not cert_path.exists() and not key_path.exists():
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "emulator CA in %s is unreadable (%s); making a new one", folder, type(exc).__name__
            )
            return None
        usable = (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and key.public_key() == cert.public_key()
            and cert.not_valid_after_utc - _utcnow() > SERVER_LIFETIME
        )
        if not usable:
            log.warning("emulator CA in %s is expired or mismatched; making a new one", folder)
            return None
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        os.chmod(key_path, 0o600)  # whatever a copy or an umask made of it
        return cls(folder, cert, key)

    @classmethod
    def _create(cls, folder: Path) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aliasync"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
        ])  # fmt: skip
        now = _utcnow()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.DNSName(SERVED_DOMAIN)], excluded_subtrees=None
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # The key first: a certificate is never left without its key.
        _write_atomically(folder / CA_KEY_FILE, key_pem, 0o600)
        _write_atomically(
            folder / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644
        )
        log.debug("created the emulator CA in %s", folder)
        return cls(folder, cert, key)

    def trust_environment(self) -> dict[str, str]:
        """The variables that make the common HTTP stacks trust this CA, and the public roots.

        Python's ``ssl`` (urllib, aiohttp, the tea SDK's async path) reads ``SSL_CERT_FILE``;
        requests reads ``REQUESTS_CA_BUNDLE``, botocore ``AWS_CA_BUNDLE``: each of these
        replaces the default roots, so they name the bundle. Node.js adds
        ``NODE_EXTRA_CA_CERTS`` to its own roots: the CA alone.
        """
        bundle = str(self.bundle_path)
        return {
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            "AWS_CA_BUNDLE": bundle,
            "NODE_EXTRA_CA_CERTS": str(self.cert_path),
        }

    def _write_bundle(self) -> None:
        # Rewritten at every start, so certifi updates reach it; the path stays the same.
        roots = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n"
        own = self.cert.public_bytes(serialization.Encoding.PEM)
        _write_atomically(self.bundle_path, roots + own, 0o644)

    def issue(self, host: str, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        """A server certificate for exactly ``host``, valid for :data:`SERVER_LIFETIME`."""
        now = _utcnow()
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        # A common name holds at most 64 characters (RFC 5280, ub-common-name), and bucket
        # hostnames run longer; clients match the subjectAltName, so a longer name gets an
        # empty subject and, as RFC 5280 4.2.1.6 then requires, a critical subjectAltName.
        fits = len(host) <= COMMON_NAME_MAX
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, host)] if fits else []
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + SERVER_LIFETIME)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=not fits)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )


class ServerCertificates:
    """TLS server contexts, one per hostname, issued by the CA on first use.

    The context chosen for a tunnel is the one for its ``CONNECT`` target; a client's SNI,
    when it names another served host, switches to that host's certificate.
    """

    def __init__(self, ca: CertificateAuthority, work_dir: str | Path) -> None:
        self.ca = ca
        self._key = ec.generate_private_key(ec.SECP256R1())
        # ssl loads certificates from files only: a private scratch folder, removed at close.
        self._work_dir = Path(tempfile.mkdtemp(prefix="tls-", dir=work_dir))
        self._key_path = self._work_dir / "server-key.pem"
        _write_atomically(
            self._key_path,
            self._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )
        self._contexts: OrderedDict[str, tuple[datetime.datetime, ssl.SSLContext]] = OrderedDict()
        self.issued = 0  # certificates issued since the start

    def close(self) -> None:
        """Remove the scratch folder (its server key); cached contexts keep working."""
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def context_for(self, host: str) -> ssl.SSLContext:
        """The server context for ``host`` (which must be served: see :func:`served_hostname`)."""
        host = host.lower().rstrip(".")
        now = _utcnow()
        cached = self._contexts.get(host)
        if cached is not None and now - cached[0] < REISSUE_AFTER:
            self._contexts.move_to_end(host)
            return cached[1]
        context = self._new_context(host)
        self._contexts[host] = (now, context)
        self._contexts.move_to_end(host)
        while len(self._contexts) > CACHED_HOSTS:
            self._contexts.popitem(last=False)
        return context

    def _new_context(self, host: str) -> ssl.SSLContext:
        cert = self.ca.issue(host, self._key.public_key())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        fd, name = tempfile.mkstemp(suffix=".pem", dir=self._work_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(cert.public_bytes(serialization.Encoding.PEM))
            context.load_cert_chain(name, self._key_path)
        finally:
            os.unlink(name)
        context.sni_callback = self._switch_by_sni
        self.issued += 1
        return context

    def _switch_by_sni(self, conn: ssl.SSLObject, server_name: str | None, _: object) -> None:
        # A name the CA may not vouch for keeps the CONNECT target's certificate: the client's
        # own hostname check then refuses it, as it would refuse a wrong server.
        if server_name is not None and served_hostname(server_name):
            conn.context = self.context_for(server_name)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (never wider first)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
