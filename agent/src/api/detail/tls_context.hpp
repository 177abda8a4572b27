// The client-side TLS context and the per-connection TLS setup (SNI, host name verification).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

namespace wafer::detail {

using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

/// A tls_client context: TLS 1.2 minimum, 1.3 allowed (pitfall P3), the system CA store plus
/// SSL_CERT_FILE / SSL_CERT_DIR when set (added, not instead) plus `ca_file` if given, and peer
/// verification unless `verify` is false.
std::shared_ptr<boost::asio::ssl::context>
make_tls_context(bool verify, const std::string& ca_file, boost::system::error_code& ec);

/// Prepares a stream for the handshake with `host`: SNI (omitted for IP literals, RFC 6066) and
/// host name verification (DNS name or IP address) when `verify` is set.
void prepare_tls(
    tls_stream& s, const std::string& host, bool verify, boost::system::error_code& ec
);

/// After a failed handshake: why certificate verification failed, for humans ("the certificate
/// is not valid for <host> (hostname mismatch)", "the certificate is not signed by a trusted CA
/// (unable to get local issuer certificate)", ...), or empty if verification was not the cause.
std::string verify_failure(tls_stream& s, const std::string& host);

} // namespace wafer::detail
