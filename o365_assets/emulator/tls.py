"""A certificate authority made at start, and the server certificate it signs.

Clients must trust the CA file rather than switch verification off; the emulator writes the CA
where a user can point `O365_CA_BUNDLE` at it.
"""

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a fresh CA and a certificate for 127.0.0.1 and localhost, written as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="o365-assets emulator")
    server_cert = ca.issue_cert("127.0.0.1", "localhost")

    files = TlsFiles(
        ca_path=directory / "emulator-ca.pem",
        cert_path=directory / "emulator-server.pem",
        key_path=directory / "emulator-server.key",
    )
    ca.cert_pem.write_to_path(str(files.ca_path))
    server_cert.cert_chain_pems[0].write_to_path(str(files.cert_path))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert_path), append=True)
    server_cert.private_key_pem.write_to_path(str(files.key_path))
    files.key_path.chmod(0o600)
    return files
