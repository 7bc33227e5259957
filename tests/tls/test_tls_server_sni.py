"""build_server_context: certificate choice by SNI over real TLS connections."""

from __future__ import annotations

import ssl
import warnings

import pytest
from tls_helpers import Runner, exchange, insecure_client, memory_handshake

from meshgate import snapshot
from meshgate.proxy.tls import UpstreamTLS, build_server_context
from meshgate.proxy.tls.certs import generate_ca, generate_self_signed, issue


def _certificate(cert_id: str, names: list[str], snis: tuple[str, ...]) -> snapshot.Certificate:
    cert, key = generate_self_signed(names)
    return snapshot.Certificate(id=cert_id, cert=cert, key=key, snis=snis)


@pytest.fixture(scope="module")
def certificates() -> dict[str, snapshot.Certificate]:
    return {
        "exact": _certificate("exact", ["a.example.com"], ("a.example.com", "B.Example.com")),
        "wild": _certificate("wild", ["*.wild.test"], ("*.wild.test",)),
        "tail": _certificate("tail", ["tail.example"], ("tail.*",)),
        "default": _certificate("default", ["default.test"], ()),
    }


def _der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


@pytest.mark.parametrize(
    ("sni", "expected_cert", "expected_sni"),
    [
        ("a.example.com", "exact", "a.example.com"),
        ("b.example.com", "exact", "b.example.com"),  # names compare case-insensitively
        ("x.wild.test", "wild", "x.wild.test"),
        ("X.Wild.Test", "wild", "x.wild.test"),
        ("deep.x.wild.test", "default", "deep.x.wild.test"),  # a wildcard covers one label
        ("tail.org", "tail", "tail.org"),
        ("tail.co.uk", "default", "tail.co.uk"),
        ("unknown.test", "default", "unknown.test"),
        (None, "default", None),  # an IP literal host: no SNI is sent
    ],
)
def test_certificate_is_chosen_by_sni(
    run: Runner,
    certificates: dict[str, snapshot.Certificate],
    sni: str | None,
    expected_cert: str,
    expected_sni: str | None,
) -> None:
    server_context = build_server_context(list(certificates.values()), "default")
    assert server_context is not None
    result = run(exchange(server_context, insecure_client(), sni))
    assert result.reply == b"ok"
    assert result.served_cert_der == _der(certificates[expected_cert].cert)
    assert result.sni_seen_by_server == expected_sni
    assert result.alpn == "http/1.1"


def test_first_certificate_is_the_default_when_none_is_named(
    run: Runner,
    certificates: dict[str, snapshot.Certificate],
) -> None:
    ordered = [certificates["wild"], certificates["exact"]]
    server_context = build_server_context(ordered, None)
    assert server_context is not None
    result = run(exchange(server_context, insecure_client(), "nothing.test"))
    assert result.served_cert_der == _der(certificates["wild"].cert)
    exact = run(exchange(server_context, insecure_client(), "a.example.com"))
    assert exact.served_cert_der == _der(certificates["exact"].cert)


def test_without_a_default_unknown_names_get_unrecognized_name(
    run: Runner,
    certificates: dict[str, snapshot.Certificate],
) -> None:
    server_context = build_server_context([certificates["exact"]], None, use_first_as_default=False)
    assert server_context is not None
    served = run(exchange(server_context, insecure_client(), "a.example.com"))
    assert served.served_cert_der == _der(certificates["exact"].cert)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        run(exchange(server_context, insecure_client(), "other.test"))
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        memory_handshake(server_context, insecure_client(), "other.test")
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        memory_handshake(server_context, insecure_client(), None)
    accepted = memory_handshake(server_context, insecure_client(), "a.example.com")
    assert accepted.getpeercert(binary_form=True) == _der(certificates["exact"].cert)


def test_rsa_and_ecdsa_pair_is_served_by_what_the_client_accepts(run: Runner) -> None:
    rsa_cert, rsa_key = generate_self_signed(["dual.test"], key_type="rsa")
    ec_cert, ec_key = generate_self_signed(["dual.test"], key_type="ec")
    dual = snapshot.Certificate(
        id="dual", cert=rsa_cert, key=rsa_key, cert_alt=ec_cert, key_alt=ec_key, snis=("dual.test",)
    )
    server_context = build_server_context([dual], None)
    assert server_context is not None

    def tls12_client(ciphers: str) -> ssl.SSLContext:
        context = insecure_client()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
        return context

    ecdsa = run(
        exchange(server_context, tls12_client("ECDHE-ECDSA-AES128-GCM-SHA256"), "dual.test")
    )
    assert ecdsa.served_cert_der == _der(ec_cert)
    rsa = run(exchange(server_context, tls12_client("ECDHE-RSA-AES128-GCM-SHA256"), "dual.test"))
    assert rsa.served_cert_der == _der(rsa_cert)


def test_tls_below_1_2_is_refused(certificates: dict[str, snapshot.Certificate]) -> None:
    server_context = build_server_context([certificates["exact"]], None)
    assert server_context is not None
    old_client = insecure_client()
    old_client.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old_client.minimum_version = ssl.TLSVersion.TLSv1_1
        old_client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        memory_handshake(server_context, old_client, "a.example.com")


def test_no_certificates_means_no_context() -> None:
    assert build_server_context([], None) is None


def test_bad_material_and_unknown_default_are_value_errors(
    certificates: dict[str, snapshot.Certificate],
) -> None:
    with pytest.raises(ValueError, match="not in the snapshot"):
        build_server_context([certificates["exact"]], "missing")
    broken = certificates["exact"].model_copy(update={"key": certificates["wild"].key})
    with pytest.raises(ValueError, match="certificate 'exact'"):
        build_server_context([broken], None)
    half_pair = certificates["exact"].model_copy(update={"cert_alt": certificates["wild"].cert})
    with pytest.raises(ValueError, match="cert_alt and key_alt"):
        build_server_context([half_pair], None)


@pytest.mark.parametrize("sni", ["a.example.com", "x.wild.test"])  # default and switched-to
def test_client_certificates_are_verified_when_asked_for(
    run: Runner,
    certificates: dict[str, snapshot.Certificate],
    sni: str,
) -> None:
    client_ca, stranger_ca = generate_ca("clients"), generate_ca("strangers")
    cert, key = issue(client_ca, ["svc-a.mesh"])
    identity = snapshot.Certificate(id="svc-a", cert=cert, key=key)
    stranger_cert, stranger_key = issue(stranger_ca, ["intruder.mesh"])
    stranger = snapshot.Certificate(id="x", cert=stranger_cert, key=stranger_key)
    pair = [certificates["exact"], certificates["wild"]]
    tls = UpstreamTLS()

    def client(who: snapshot.Certificate | None) -> ssl.SSLContext:
        context = tls.context_for(False, None, [], who)
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # so a refusal ends the handshake
        return context

    required = build_server_context(
        pair,
        None,
        client_cas=[snapshot.CACertificate(id="ca", cert=client_ca.cert)],
        require_client_certificate=True,
    )
    assert required is not None
    result = run(exchange(required, client(identity), sni))
    assert result.client_cert_seen_by_server is not None
    assert (("commonName", "svc-a.mesh"),) in result.client_cert_seen_by_server["subject"]
    with pytest.raises(ssl.SSLError, match="ALERT_HANDSHAKE_FAILURE"):
        memory_handshake(required, client(None), sni)
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        memory_handshake(required, client(stranger), sni)

    optional = build_server_context(
        pair, None, client_cas=[snapshot.CACertificate(id="ca", cert=client_ca.cert)]
    )
    assert optional is not None
    anonymous = run(exchange(optional, client(None), sni))
    assert anonymous.reply == b"ok"
    assert anonymous.client_cert_seen_by_server is None
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        memory_handshake(optional, client(stranger), sni)


def test_requiring_client_certificates_needs_cas(
    certificates: dict[str, snapshot.Certificate],
) -> None:
    with pytest.raises(ValueError, match="client_cas"):
        build_server_context([certificates["exact"]], None, require_client_certificate=True)
