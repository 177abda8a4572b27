#include <wafer/store/error.hpp>

#include <utility>

namespace wafer::store {
namespace {

// boost::system::error_category's destructor is non-virtual by design (categories are static).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "wafer.store"; }

    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::run_not_found:
            return "run not found";
        case errc::run_exists:
            return "a run with this id exists";
        case errc::lease_held:
            return "another owner holds the run's lease";
        case errc::schema_too_new:
            return "the store was written by a newer wafer";
        case errc::corrupt:
            return "the store is not a wafer run store or is damaged";
        case errc::io:
            return "run store I/O failed";
        case errc::unavailable:
            return "the run store's server is unavailable";
        }
        return "unknown run store error";
    }
};
#pragma GCC diagnostic pop

} // namespace

const boost::system::error_category& error_category() noexcept {
    static const category_impl instance;
    return instance;
}

void throw_error(errc e, std::string detail) {
    diagnostics d;
    d.detail = std::move(detail);
    throw wafer::error(make_error_code(e), std::move(d));
}

} // namespace wafer::store
