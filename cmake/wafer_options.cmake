# Warnings and sanitizers for project code only; linked PRIVATE so consumers never inherit them.
add_library(wafer_warnings INTERFACE)
target_compile_options(wafer_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
    -Wnon-virtual-dtor -Woverloaded-virtual
    # Designated initializers that leave members defaulted are idiomatic C++20.
    -Wno-missing-field-initializers
    # GCC 12 false positive on Asio's recycling allocator for awaitable frames.
    $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>)
if(WAFER_WERROR)
    target_compile_options(wafer_warnings INTERFACE -Werror)
endif()

if(WAFER_SANITIZE)
    add_compile_options(-fsanitize=${WAFER_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${WAFER_SANITIZE})
    # Checks to leave out, e.g. "vptr,alignment,null" (make test: see the Makefile's asan-test).
    if(WAFER_SANITIZE_SKIP)
        add_compile_options(-fno-sanitize=${WAFER_SANITIZE_SKIP})
    endif()
endif()

# Asio's headers are the bulk of every translation unit: precompile them once per target.
set(WAFER_PCH_HEADERS
    <boost/asio.hpp>
    <boost/asio/ssl.hpp>
    <boost/asio/experimental/awaitable_operators.hpp>
    <boost/asio/experimental/channel.hpp>
    <boost/asio/experimental/parallel_group.hpp>
    <boost/beast/core.hpp>
    <boost/beast/http.hpp>
    <boost/beast/ssl.hpp>
    <nlohmann/json.hpp>
    <string>
    <vector>
    <optional>)
