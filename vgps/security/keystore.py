"""A DDS-Security keystore in SROS2's layout, written with the ``cryptography`` package.

The layout ``ros2 security create_keystore`` / ``create_enclave`` writes (and rcl reads)::

    KEYSTORE/public/ca.cert.pem             self-signed CA (P-256, CN=vgpsCA)
    KEYSTORE/public/{identity,permissions}_ca.cert.pem  -> ca.cert.pem
    KEYSTORE/private/ca.key.pem             (0600) and {identity,permissions}_ca.key.pem -> it
    KEYSTORE/enclaves/governance.{xml,p7s}  join, read and write access control, encryption
    KEYSTORE/enclaves/<enclave>/cert.pem, key.pem     identity (CN=<enclave path>)
    KEYSTORE/enclaves/<enclave>/{identity_ca.cert.pem, permissions_ca.cert.pem,
                                 governance.p7s}     -> the keystore's (relative links)
    KEYSTORE/enclaves/<enclave>/permissions.{xml,p7s}  its grants, default DENY

``.p7s`` files are S/MIME, detached, text (what ``openssl smime -sign -text`` writes and Fast
DDS reads), signed by the permissions CA. Domain ids: a range (``id_range``) in both files.

Usage::

    write_keystore(Path("keys"), {"/vgps/critic_node": Grants(...)}, domains=(0, 101))
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from vgps.security.permissions import Grants

CA_NAME = "vgpsCA"
VALID_DAYS = 3650
_SCHEMA = "http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_{}.xsd"
_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
         '<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
         '     xsi:noNamespaceSchemaLocation="{}">\n')


def write_keystore(path: Path, enclaves: Mapping[str, Grants],
                   domains: tuple[int, int] = (0, 101)) -> list[str]:
    """Writes a new keystore with one enclave per entry of ``enclaves``.

    Args:
        path: the keystore directory: must not exist or be empty (a keystore is never
            overwritten: its CA is what every enclave trusts).
        enclaves: ``{enclave path: grants}``, e.g. ``{"/vgps/critic_node": ...}``.
        domains: the ROS domain ids the keystore is valid for (inclusive).

    Returns:
        The enclave paths written.

    Raises:
        FileExistsError: ``path`` exists and is not an empty directory.
        ValueError: a bad domain range or enclave path.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path}: already exists and is not empty; a keystore is never "
                              "overwritten (its CA is what every enclave trusts): use a new "
                              "directory, or delete this one to start over")
    low, high = domains
    if not 0 <= low <= high <= 232:
        raise ValueError(f"domain range {low}-{high}: use A-B with 0 <= A <= B <= 232")
    for name in enclaves:
        parts = name.split("/")
        if not name.startswith("/") or not all(p.replace("_", "a").isalnum() for p in parts[1:]):
            raise ValueError(f"enclave {name!r}: an absolute path of [A-Za-z0-9_] names")
    for sub in ("public", "private", "enclaves"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ca_cert = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, now, ca=True)
    _write_key(ca_key, path / "private" / "ca.key.pem")
    (path / "public" / "ca.cert.pem").write_bytes(ca_cert.public_bytes(_PEM))
    for role in ("identity_ca", "permissions_ca"):
        os.symlink("ca.cert.pem", path / "public" / f"{role}.cert.pem")
        os.symlink("ca.key.pem", path / "private" / f"{role}.key.pem")
    governance = governance_xml(domains)
    (path / "enclaves" / "governance.xml").write_text(governance)
    (path / "enclaves" / "governance.p7s").write_bytes(sign(governance, ca_cert, ca_key))
    for name, grant in enclaves.items():
        _write_enclave(path, name, grant, domains, ca_cert, ca_key, now)
    return list(enclaves)


def governance_xml(domains: tuple[int, int]) -> str:
    """Governance: only authenticated participants, access control on every topic, encrypted."""
    return (_HEAD.format(_SCHEMA.format("governance")) + f"""\
  <domain_access_rules>
    <domain_rule>
{_domains(domains, 6)}
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>SIGN</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
""")


def permissions_xml(enclave: str, grant: Grants, domains: tuple[int, int],
                    not_before: datetime.datetime, not_after: datetime.datetime) -> str:
    """One grant: subject ``CN=<enclave>``, allow publish/subscribe on ``grant``, else DENY."""
    def topics(kind: str, names: frozenset[str]) -> str:
        lines = "".join(f"            <topic>{escape(n)}</topic>\n" for n in sorted(names))
        return (f"        <{kind}>\n          <topics>\n{lines}"
                f"          </topics>\n        </{kind}>\n")

    fmt = "%Y-%m-%dT%H:%M:%S"
    return (_HEAD.format(_SCHEMA.format("permissions")) + f"""\
  <permissions>
    <grant name="{escape(enclave)}">
      <subject_name>CN={escape(enclave)}</subject_name>
      <validity>
        <not_before>{not_before.strftime(fmt)}</not_before>
        <not_after>{not_after.strftime(fmt)}</not_after>
      </validity>
      <allow_rule>
{_domains(domains, 8)}
{topics("publish", grant.publish)}{topics("subscribe", grant.subscribe)}\
      </allow_rule>
      <default>DENY</default>
    </grant>
  </permissions>
</dds>
""")


def sign(text: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``text`` signed as S/MIME (detached, text/plain), as ``openssl smime -sign -text``."""
    options = [pkcs7.PKCS7Options.Text, pkcs7.PKCS7Options.DetachedSignature]
    return (pkcs7.PKCS7SignatureBuilder().set_data(text.encode())
            .add_signer(cert, key, hashes.SHA256()).sign(serialization.Encoding.SMIME, options))


_PEM = serialization.Encoding.PEM


def _domains(domains: tuple[int, int], indent: int) -> str:
    pad = " " * indent
    return (f"{pad}<domains>\n{pad}  <id_range>\n{pad}    <min>{domains[0]}</min>\n"
            f"{pad}    <max>{domains[1]}</max>\n{pad}  </id_range>\n{pad}</domains>")


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key,
                 now: datetime.datetime, ca: bool) -> x509.Certificate:
    # A day back: clocks of the machines of a lab disagree by a little.
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None),
                           critical=ca)
            .sign(signing_key, hashes.SHA256()))


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    data = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_enclave(root: Path, name: str, grant: Grants, domains: tuple[int, int],
                   ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                   now: datetime.datetime) -> None:
    directory = root / "enclaves" / name.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    for target in (root / "public" / "identity_ca.cert.pem",
                   root / "public" / "permissions_ca.cert.pem",
                   root / "enclaves" / "governance.p7s"):
        os.symlink(os.path.relpath(target, directory), directory / target.name)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _certificate(subject, ca_cert.subject, key.public_key(), ca_key, now, ca=False)
    _write_key(key, directory / "key.pem")
    (directory / "cert.pem").write_bytes(cert.public_bytes(_PEM))
    text = permissions_xml(name, grant, domains, cert.not_valid_before_utc,
                           cert.not_valid_after_utc)
    (directory / "permissions.xml").write_text(text)
    (directory / "permissions.p7s").write_bytes(sign(text, ca_cert, ca_key))
