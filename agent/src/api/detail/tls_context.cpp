#include "api/detail/tls_context.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <cstdlib>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace wafer::detail {

namespace ssl = boost::asio::ssl;

std::shared_ptr<ssl::context>
make_tls_context(bool verify, const std::string& ca_file, boost::system::error_code& ec) {
    // tlsv12_client would pin the maximum to 1.2 as well in Boost 1.81; raise only the minimum.
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
        ec = boost::system::error_code(
            static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()
        );
        return nullptr;
    }
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    if (!verify) {
        ctx->set_verify_mode(ssl::verify_none);
        return ctx;
    }
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_default_verify_paths(ec);
    if (ec) {
        return nullptr;
    }
    // OpenSSL lets SSL_CERT_FILE and SSL_CERT_DIR replace the system store; here they add to
    // it, so that trusting a private CA does not distrust every public one.
    const bool env_file = std::getenv(X509_get_default_cert_file_env()) != nullptr;
    const bool env_dir = std::getenv(X509_get_default_cert_dir_env()) != nullptr;
    if (env_file || env_dir) {
        // A system without the file or the directory simply has fewer CAs.
        (void)SSL_CTX_load_verify_locations(
            ctx->native_handle(),
            env_file ? X509_get_default_cert_file() : nullptr,
            env_dir ? X509_get_default_cert_dir() : nullptr
        );
        ::ERR_clear_error();
    }
    if (!ca_file.empty()) {
        ctx->load_verify_file(ca_file, ec);
        if (ec) {
            return nullptr;
        }
    }
    return ctx;
}

void prepare_tls(
    tls_stream& s, const std::string& host, bool verify, boost::system::error_code& ec
) {
    boost::system::error_code addr_ec;
    boost::asio::ip::make_address(host, addr_ec);
    const bool is_ip = !addr_ec;
    if (!is_ip) {
        // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
        if (SSL_ctrl(
                s.native_handle(),
                SSL_CTRL_SET_TLSEXT_HOSTNAME,
                TLSEXT_NAMETYPE_host_name,
                const_cast<char*>(host.c_str())
            ) != 1) {
            ec = boost::system::error_code(
                static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()
            );
            return;
        }
    }
    if (verify) {
        // OpenSSL's own check (not a verify callback): a mismatch then has its own verify
        // result, X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH, which verify_failure reads.
        const int ok =
            is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s.native_handle()), host.c_str())
                  : SSL_set1_host(s.native_handle(), host.c_str());
        if (ok != 1) {
            ec = boost::system::error_code(
                static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()
            );
        }
    }
}

std::string verify_failure(tls_stream& s, const std::string& host) {
    const long result = SSL_get_verify_result(s.native_handle());
    if (result == X509_V_OK) {
        return {};
    }
    const std::string reason = X509_verify_cert_error_string(result);
    switch (result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "the certificate is not valid for " + host + " (" + reason + ")";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "the certificate is not signed by a trusted CA (" + reason + ")";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "the certificate is outside its validity period (" + reason + ")";
    default:
        return "the certificate was rejected (" + reason + ")";
    }
}

} // namespace wafer::detail
