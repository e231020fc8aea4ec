"""Connection settings: URL checks, credentials from the environment or files (never the URL), real TLS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from fake_elasticsearch import FakeElasticsearch
from test_es_documents import epoch_record

from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
from pinnprov.core.elastic_connection import normalise_url, resolve_connection, resolve_credentials
from pinnprov.store.sink import ExportStatus


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9200", "http://127.0.0.1:9200"),
        ("localhost", "http://localhost:9200"),
        ("elasticsearch://es.g5k:9201", "http://es.g5k:9201"),
        ("elasticsearch+https://es.g5k", "https://es.g5k:9200"),
        ("https://[::1]:9200/prefix/", "https://[::1]:9200/prefix"),
    ],
)
def test_urls_are_normalised(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host", "scheme must be one of"),
        ("https://user:pw@host", "credentials in the URL are refused"),
        ("http://host:99999", "invalid port"),
        ("http://", "no host"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalise_url(url)


def test_several_nodes_are_comma_separated() -> None:
    connection = resolve_connection("http://a:9200, http://b:9200", env={})
    assert connection.hosts == ("http://a:9200", "http://b:9200")


def test_credentials_precedence_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("ZW5jb2RlZA==\n")
    assert resolve_credentials(env={"PINNPROV_ES_API_KEY_FILE": str(key_file)}).api_key == "ZW5jb2RlZA=="
    assert resolve_credentials(api_key="explicit", env={"PINNPROV_ES_API_KEY": "env"}).api_key == "explicit"
    assert resolve_credentials(env={"PINNPROV_ES_API_KEY": "id:secret"}).api_key == ("id", "secret")
    basic = resolve_credentials(env={"PINNPROV_ES_USERNAME": "u", "PINNPROV_ES_PASSWORD": "p"})
    assert (basic.username, basic.password, basic.kind) == ("u", "p", "basic")
    assert "p" not in repr(basic) and "secret" not in repr(resolve_credentials(api_key="secret"))
    assert basic.authorization_header() == "Basic dTpw"
    kibana = resolve_credentials("PINNPROV_KIBANA_", fallback_prefix="PINNPROV_ES_", env={"PINNPROV_ES_API_KEY": "k"})
    assert kibana.authorization_header() == "ApiKey k"
    assert resolve_credentials(env={}).kind == "none"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PINNPROV_ES_API_KEY": "k", "PINNPROV_ES_USERNAME": "u", "PINNPROV_ES_PASSWORD": "p"}, "both set"),
        ({"PINNPROV_ES_PASSWORD": "p"}, "USERNAME is not"),
        ({"PINNPROV_ES_USERNAME": "u"}, "PASSWORD"),
        ({"PINNPROV_ES_API_KEY_FILE": "/nonexistent/key"}, "cannot read '/nonexistent/key'"),
    ],
)
def test_inconsistent_credentials_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_credentials(env=env)


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a file"):
        resolve_connection("https://h", env={"PINNPROV_ES_CA_CERTS": str(tmp_path / "missing.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValueError, match="not https://"):
        resolve_connection("http://h", ca_certs=str(ca), env={})


# --- real TLS: a self-signed CA, a server certificate for 127.0.0.1, verification on ----------------------
def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer_key, issuer_name, key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinnprov test CA")])
    ca_cert = build("pinnprov test CA", ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", ca_key, ca_name, key, False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_tls_with_a_private_ca_verifies_and_refuses_without_it(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FakeElasticsearch(tls=context) as es:
        assert es.url.startswith("https://")
        trusted = ElasticsearchSink(es.url, ca_certs=str(ca), backoff_s=0.01)
        assert trusted.export([epoch_record(0)]).ok
        trusted.shutdown()
        untrusted = ElasticsearchSink(es.url, max_attempts=1, backoff_s=0.01)
        result = untrusted.export([epoch_record(0)])
        assert result.status is ExportStatus.RETRYABLE
        assert "CERTIFICATE_VERIFY_FAILED" in result.detail or "certificate" in result.detail.lower()
        untrusted.shutdown()
