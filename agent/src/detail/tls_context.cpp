#include "detail/tls_context.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>

#include <openssl/ssl.h>
#include <openssl/tls1.h>

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
        s.set_verify_callback(ssl::host_name_verification(host));
    }
}

} // namespace wafer::detail
