"""UpstreamTLS: verification, client certificates (mTLS), verify depth and memoization."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from tls_helpers import Runner, exchange

from meshgate import snapshot
from meshgate.proxy.tls import UpstreamTLS, check_verify_depth
from meshgate.proxy.tls.certs import CertificateAuthority, generate_ca, issue
from meshgate.proxy.tls.common import load_pem_pairs


@pytest.fixture(scope="module")
def upstream_ca() -> CertificateAuthority:
    return generate_ca("upstream CA")


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    return generate_ca("some other CA")


def _server_context(ca: CertificateAuthority, names: list[str]) -> ssl.SSLContext:
    """A plain stdlib server (not ours: these tests are about the client side)."""
    cert, key = issue(ca, names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_pem_pairs(context, [(cert, key)], "test server")
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _ca(ca: CertificateAuthority, ca_id: str = "ca") -> snapshot.CACertificate:
    return snapshot.CACertificate(id=ca_id, cert=ca.cert)


def test_verified_connection_to_a_server_of_the_trusted_ca(
    run: Runner, upstream_ca: CertificateAuthority
) -> None:
    context = UpstreamTLS().context_for(True, None, [_ca(upstream_ca)], None)
    # the verification rules Python 3.13 turns on by default: our certificates satisfy them
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    result = run(exchange(_server_context(upstream_ca, ["api.internal"]), context, "api.internal"))
    assert result.reply == b"ok"
    assert result.alpn == "http/1.1"  # offered alone, though the server also speaks h2


def test_verification_fails_with_the_wrong_ca(
    run: Runner,
    upstream_ca: CertificateAuthority,
    other_ca: CertificateAuthority,
) -> None:
    context = UpstreamTLS().context_for(True, None, [_ca(other_ca)], None)
    server = _server_context(upstream_ca, ["api.internal"])
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        run(exchange(server, context, "api.internal"))


def test_verification_fails_for_another_host_name(
    run: Runner, upstream_ca: CertificateAuthority
) -> None:
    context = UpstreamTLS().context_for(True, None, [_ca(upstream_ca)], None)
    server = _server_context(upstream_ca, ["api.internal"])
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        run(exchange(server, context, "other.internal"))


def test_verify_off_accepts_any_certificate(
    run: Runner,
    upstream_ca: CertificateAuthority,
    other_ca: CertificateAuthority,
) -> None:
    context = UpstreamTLS().context_for(False, None, [_ca(other_ca)], None)
    assert context.verify_mode == ssl.CERT_NONE
    server = _server_context(upstream_ca, ["api.internal"])
    result = run(exchange(server, context, "other.internal"))
    assert result.reply == b"ok"


def test_client_certificate_is_presented_for_mtls(
    run: Runner,
    upstream_ca: CertificateAuthority,
    other_ca: CertificateAuthority,
) -> None:
    server = _server_context(upstream_ca, ["api.internal"])
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(cadata=other_ca.cert)  # client certificates come from other_ca
    client_cert, client_key = issue(other_ca, ["gateway.client"])
    identity = snapshot.Certificate(id="client", cert=client_cert, key=client_key)
    tls = UpstreamTLS()

    with_identity = tls.context_for(True, None, [_ca(upstream_ca)], identity)
    result = run(exchange(server, with_identity, "api.internal"))
    assert result.reply == b"ok"
    assert result.client_cert_seen_by_server is not None
    assert (("commonName", "gateway.client"),) in result.client_cert_seen_by_server["subject"]

    without_identity = tls.context_for(True, None, [_ca(upstream_ca)], None)
    # TLS 1.3: the client's handshake ends before the server checks the client; the server
    # then drops the connection, which the client sees as an error or an end of stream.
    try:
        refused = run(exchange(server, without_identity, "api.internal"))
    except (ssl.SSLError, ConnectionError):
        pass
    else:
        assert refused.reply == b""
        assert refused.client_cert_seen_by_server is None


@pytest.fixture(scope="module")
def chained_server() -> tuple[trustme.CA, ssl.SSLContext]:
    """A server whose certificate hangs below one intermediate CA."""
    root = trustme.CA()
    intermediate = root.create_child_ca()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    intermediate.issue_cert("deep.internal").configure_cert(server)
    return root, server


@pytest.mark.parametrize(("depth", "allowed"), [(None, True), (2, True), (1, True), (0, False)])
def test_verify_depth_is_enforced_after_the_handshake(
    run: Runner,
    chained_server: tuple[trustme.CA, ssl.SSLContext],
    depth: int | None,
    allowed: bool,
) -> None:
    root, server = chained_server
    root_ca = snapshot.CACertificate(id="root", cert=root.cert_pem.bytes().decode())
    context = UpstreamTLS().context_for(True, depth, [root_ca], None)
    assert context.verify_depth == depth

    def check(transport: asyncio.BaseTransport) -> None:
        check_verify_depth(transport)

    if allowed:
        assert run(exchange(server, context, "deep.internal", check)).reply == b"ok"
    else:
        with pytest.raises(ssl.SSLCertVerificationError, match="1 intermediate CAs"):
            run(exchange(server, context, "deep.internal", check))


def test_verify_depth_is_ignored_when_not_verifying(
    run: Runner, chained_server: tuple[trustme.CA, ssl.SSLContext]
) -> None:
    _, server = chained_server
    context = UpstreamTLS().context_for(False, 0, [], None)
    assert context.verify_depth is None
    assert run(exchange(server, context, "deep.internal", check_verify_depth)).reply == b"ok"


def test_identical_inputs_give_the_identical_context(
    upstream_ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    cert, key = issue(other_ca, ["gateway.client"])
    tls = UpstreamTLS()
    first = tls.context_for(
        True, 3, [_ca(upstream_ca, "a")], snapshot.Certificate(id="c", cert=cert, key=key)
    )
    # equal content in new objects (a reloaded snapshot) — even under other ids
    again = tls.context_for(
        True, 3, [_ca(upstream_ca, "b")], snapshot.Certificate(id="d", cert=cert, key=key)
    )
    assert again is first
    assert tls.context_for(True, 3, [_ca(other_ca)], None) is not first
    assert tls.context_for(True, 4, [_ca(upstream_ca)], None) is not tls.context_for(
        True, 3, [_ca(upstream_ca)], None
    )
    # without verification CAs and depth do not matter
    unverified = tls.context_for(False, None, [], None)
    assert tls.context_for(False, 7, [_ca(other_ca)], None) is unverified
    assert unverified.check_hostname is False
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname


def test_cache_is_bounded_and_drops_the_least_recently_used(
    upstream_ca: CertificateAuthority,
) -> None:
    tls = UpstreamTLS(max_contexts=2)
    kept = tls.context_for(False, None, [], None)
    dropped = tls.context_for(True, None, [_ca(upstream_ca)], None)
    assert tls.context_for(False, None, [], None) is kept  # now most recently used
    tls.context_for(True, 1, [_ca(upstream_ca)], None)
    assert len(tls) == 2
    assert tls.context_for(False, None, [], None) is kept
    assert tls.context_for(True, None, [_ca(upstream_ca)], None) is not dropped


def test_bad_material_is_a_value_error(upstream_ca: CertificateAuthority) -> None:
    tls = UpstreamTLS()
    with pytest.raises(ValueError, match="ca_certificates"):
        tls.context_for(True, None, [snapshot.CACertificate(id="x", cert="not a pem")], None)
    cert, _ = issue(upstream_ca, ["a"])
    _, other_key = issue(upstream_ca, ["b"])
    mismatched = snapshot.Certificate(id="c", cert=cert, key=other_key)
    with pytest.raises(ValueError, match="client certificate"):
        tls.context_for(False, None, [], mismatched)
