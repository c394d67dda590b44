"""A local cluster's TLS certificates (``rillet cluster up --secure --tls``, docs/security.md
"SASL_SSL"): a self-signed CA and one certificate for the brokers' KAFKA listeners, made
once in the cluster's data dir.

Python's ``ssl`` module can use certificates but not make them, and the ``openssl`` CLI is
not something rillet may assume, so the certificates are made with the ``cryptography``
package (the optional ``tls`` extra: ``pip install 'rillet[tls]'``); nothing else in rillet
needs it. Keys are ECDSA P-256 (fast to make and to handshake with); the broker
certificate names ``localhost`` and 127.0.0.1 (the local cluster's addresses) plus any
``hosts`` given, and is valid for ten years.

Files (data dir): ``ca.pem`` (the CA certificate: clients' ``ssl.ca.location``),
``ca.key`` (0600), ``kafka-broker.pem`` (0600: the broker's private key and certificate
chain, the broker's ``ssl.keystore.location`` with ``ssl.keystore.type=PEM``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
BROKER_PEM_FILE = "kafka-broker.pem"


def _cryptography():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise RuntimeError("making TLS certificates needs the cryptography package "
                           "(pip install 'rillet[tls]'), or give the brokers your own: "
                           "ssl.keystore.type=PEM, ssl.keystore.location=...") from None
    return x509, hashes, serialization, ec, NameOID


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_certificates(data_dir: Path, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """(CA certificate, broker PEM key store) in ``data_dir``, made if missing."""
    data_dir = Path(data_dir)
    ca_path, broker_path = data_dir / CA_FILE, data_dir / BROKER_PEM_FILE
    if ca_path.exists() and broker_path.exists():
        return ca_path, broker_path
    x509, hashes, serialization, ec, NameOID = _cryptography()
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rillet local cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rillet broker")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write_private(data_dir / CA_KEY_FILE, ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write_private(broker_path, key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem) + ca.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))
    return ca_path, broker_path


def tls_cluster_configs(data_dir: Path, sasl: bool) -> dict[str, str]:
    """Broker configs for a TLS KAFKA listener (SASL_SSL with ``sasl``, else SSL) with the
    certificates of ``ensure_certificates``."""
    _, broker = ensure_certificates(data_dir)
    return {"listener.security.protocol.map": "KAFKA:SASL_SSL" if sasl else "KAFKA:SSL",
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(broker)}
